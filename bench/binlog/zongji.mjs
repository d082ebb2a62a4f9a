// Reads a binlog range with ZongJi (npm @vlasky/zongji) and counts row images, for bench_binlog.
//   node zongji.mjs HOST PORT USER PASSWORD SCHEMA FILE POSITION EXPECTED_ROWS
// Exits when EXPECTED_ROWS row images of SCHEMA were read; prints "rows <n>".
import ZongJi from '@vlasky/zongji';

const [host, port, user, password, schema, filename, position, expected] = process.argv.slice(2);
const want = Number(expected);
const zongji = new ZongJi({ host, port: Number(port), user, password });
let rows = 0;
zongji.on('binlog', (evt) => {
  if (!evt.rows) return;
  rows += evt.rows.length;
  if (rows >= want) {
    console.log(`rows ${rows}`);
    process.exit(0);
  }
});
zongji.on('error', (err) => {
  console.error(`zongji: ${err.message || err}`);
  process.exit(1);
});
zongji.start({
  serverId: 4717,
  filename,
  position: Number(position),
  includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows'],
  includeSchema: { [schema]: true },
});
