#!/usr/bin/env bash
# A local base image from Debian's own packages, for machines that reach no image registry:
# debootstrap (minbase) + Debian's python3 (3.11 on bookworm), imported into podman's storage.
# The Dockerfile's default base is the official python slim image; build with this one through
#   podman build --build-arg BASE_IMAGE=localhost/churn-base:bookworm ...
# The machine's own extra certificate authorities (/usr/local/share/ca-certificates, e.g. a TLS-inspecting
# egress proxy) are trusted in the base too, so pip and uv reach PyPI from the build as they do from the host.
# The image is labelled with a hash of its inputs (this script, those certificates): an existing image built
# from the same inputs is kept.
#
# Usage: deploy/image/build-base.sh [TAG]     (env: DEBIAN_MIRROR, default: the machine's apt mirror)
set -euo pipefail

tag="${1:-localhost/churn-base:bookworm}"
suite=bookworm
packages=python3,python3-venv,ca-certificates
extra_cas=(/usr/local/share/ca-certificates/*.crt)
[ -e "${extra_cas[0]}" ] || extra_cas=()
inputs="$(cat "$0" "${extra_cas[@]}" | sha256sum | cut -c1-16)"

if [ "$(podman image inspect --format '{{index .Labels "churn.base.inputs"}}' "$tag" 2>/dev/null)" = "$inputs" ]; then
    echo "base image $tag is up to date (inputs $inputs)"
    exit 0
fi

mirror="${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n 's/^URIs: *//p; s/^deb \(\[[^]]*\] \)\?\([^ ]*\) .*/\2/p' | grep -v security | head -n1 || true)}"
mirror="${mirror:-http://deb.debian.org/debian}"

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror"
if [ "${#extra_cas[@]}" -gt 0 ]; then
    cp "${extra_cas[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates
fi
# What an image does not need: package caches, docs, man pages.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
tar -C "$root" --numeric-owner -c . | podman import \
    --change 'CMD ["python3"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL churn.base.inputs=$inputs" \
    - "$tag"
echo "built base image $tag (inputs $inputs)"
