// LD_PRELOAD shim for disk-full tests: while the file named by CIVISHARE_DISK_FULL_FLAG exists,
// statvfs() of any path under CIVISHARE_DISK_FULL_DIR reports a file system with 1 MB free, as
// on a nearly full disk; remove the flag and the space is back. Nothing else changes (writes
// still succeed: the test shows the agent stops writing on its own). Built without sanitizers.
#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdlib>
#include <cstring>

namespace {
bool full(const char* path) {
  const char* flag = std::getenv("CIVISHARE_DISK_FULL_FLAG");
  const char* dir = std::getenv("CIVISHARE_DISK_FULL_DIR");
  if (!flag || !dir || !path) return false;
  struct stat st {};
  if (::stat(flag, &st) != 0) return false;
  return std::strncmp(path, dir, std::strlen(dir)) == 0;
}

void shrink(struct statvfs* buf) {
  const unsigned long one_mb = 1UL << 20;
  const unsigned long unit = buf->f_frsize ? buf->f_frsize : 4096;
  buf->f_bavail = one_mb / unit;
  buf->f_bfree = one_mb / unit;
}
}  // namespace

extern "C" {

int statvfs(const char* path, struct statvfs* buf) {
  static auto next =
      reinterpret_cast<int (*)(const char*, struct statvfs*)>(::dlsym(RTLD_NEXT, "statvfs"));
  int rc = next(path, buf);
  if (rc == 0 && full(path)) shrink(buf);
  return rc;
}

int statvfs64(const char* path, struct statvfs64* buf) {  // the same layout on 64-bit Linux
  return statvfs(path, reinterpret_cast<struct statvfs*>(buf));
}

}  // extern "C"
