#!/bin/sh
# packaging/install.sh - install hotpath into DESTDIR (make install, make deb,
# make rpm all go through here, so the three agree on every path).
#
#   OUT=build DESTDIR=/tmp/stage PREFIX=/usr packaging/install.sh
#
# Layout (PREFIX=/usr): $PREFIX/sbin/hotpathd, $PREFIX/bin/hotpathctl,
# /etc/hotpath/hotpath.ini (mode 0644: it holds no secret; the tokens file
# it may name must be 0600), $UNITDIR/hotpathd.service, man pages (gzip -9n)
# under $PREFIX/share/man and the user docs under $PREFIX/share/doc/hotpath.
# The unit names /usr/sbin/hotpathd; another PREFIX is substituted into the
# installed copy. Binaries are installed as built; the package builders
# strip them (make install keeps the symbols, as `make install` usually
# does). Not done here: enabling or starting the service (the packages'
# maintainer scripts do that) and creating a tokens file (an operator's
# choice: see docs/operations.md).
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-build}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/lib/systemd/system}
MANDIR=${MANDIR:-$PREFIX/share/man}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/hotpath}

for f in "$OUT/hotpathd" "$OUT/hotpathctl"; do
	[ -x "$f" ] || { echo "install.sh: $f is not built (run make)" >&2; exit 1; }
done

install -d -m 0755 "$DESTDIR$PREFIX/sbin" "$DESTDIR$PREFIX/bin" \
	"$DESTDIR$SYSCONFDIR/hotpath" "$DESTDIR$UNITDIR" \
	"$DESTDIR$MANDIR/man1" "$DESTDIR$MANDIR/man5" "$DESTDIR$MANDIR/man8" "$DESTDIR$DOCDIR"
install -m 0755 "$OUT/hotpathd" "$DESTDIR$PREFIX/sbin/hotpathd"
install -m 0755 "$OUT/hotpathctl" "$DESTDIR$PREFIX/bin/hotpathctl"
install -m 0644 etc/hotpath.ini "$DESTDIR$SYSCONFDIR/hotpath/hotpath.ini"
sed -e "s|/usr/sbin/hotpathd|$PREFIX/sbin/hotpathd|g" \
    -e "s|/etc/hotpath/hotpath.ini|$SYSCONFDIR/hotpath/hotpath.ini|g" \
	systemd/hotpathd.service > "$DESTDIR$UNITDIR/hotpathd.service"
chmod 0644 "$DESTDIR$UNITDIR/hotpathd.service"
for m in docs/man/hotpathctl.1 docs/man/hotpath.ini.5 docs/man/hotpathd.8; do
	sec=${m##*.}
	gzip -9n < "$m" > "$DESTDIR$MANDIR/man$sec/$(basename "$m").gz"
	chmod 0644 "$DESTDIR$MANDIR/man$sec/$(basename "$m").gz"
done
install -m 0644 README.md "$DESTDIR$DOCDIR/README.md"
for d in docs/*.md; do
	install -m 0644 "$d" "$DESTDIR$DOCDIR/$(basename "$d")"
done
