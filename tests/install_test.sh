#!/usr/bin/env bash
# cmake --install puts the daemon, the CLI, the systemd unit (naming the installed binary) and
# the example config where the README says, for any prefix.
set -euo pipefail
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
DESTDIR="$dest" cmake --install "$build" --prefix /opt/ac >/dev/null
fail=0
for f in /opt/ac/sbin/anychaind /opt/ac/sbin/anychain /etc/anychain/anychaind.yaml.example \
         /opt/ac/lib/anychain/bpf/anychain.bpf.o; do
  [[ -e "$dest$f" ]] || { echo "missing: $f"; fail=1; }
done
unit=$(find "$dest" -name anychaind.service | head -1)
[[ -n "$unit" ]] || { echo "missing: anychaind.service"; exit 1; }
grep -qx 'ExecStart=/opt/ac/sbin/anychaind --config /etc/anychain/anychaind.yaml' "$unit" \
  || { echo "ExecStart does not name the installed binary:"; grep Exec "$unit"; fail=1; }
out=$("$dest/opt/ac/sbin/anychaind" --check-config "$dest/etc/anychain/anychaind.yaml.example" 2>&1 || true)
if grep -v "does not exist" <<<"$out" | grep -q .; then
  echo "the example config should only miss its interfaces here:"; echo "$out"; fail=1
fi
[[ $fail == 0 ]] && echo "install: ok"
exit $fail
