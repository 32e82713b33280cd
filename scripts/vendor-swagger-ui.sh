#!/usr/bin/env bash
# Replace the Swagger UI assets served by /docs with those of swagger-ui-dist VERSION
# from the npm registry (files copied unchanged, digests recorded in SHA256SUMS).
# Usage: scripts/vendor-swagger-ui.sh 5.35.0
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:?usage: $0 VERSION}"
dest=src/backup_api/static/swagger
files=(swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE package.json
       swagger-ui-bundle.js.LICENSE.txt)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
for file in "${files[@]}"; do
    cp "$work/package/$file" "$dest/$file"
done
(cd "$dest" && sha256sum "${files[@]}" > SHA256SUMS)
sed -i "s/swagger-ui-dist\` [0-9][0-9.]* from/swagger-ui-dist\` $version from/; s/swagger-ui-dist@[0-9][0-9.]*/swagger-ui-dist@$version/" "$dest/README.md"
echo "Swagger UI $version in $dest"
