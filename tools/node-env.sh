# Sourced by the project's scripts: the Node.js that tools/install-node.sh installed comes
# first on PATH.
for _cairn_node in /opt/cairn/node-v24.*/bin; do
  if [ -x "$_cairn_node/node" ]; then
    PATH="$_cairn_node:$PATH"
  fi
done
unset _cairn_node
export PATH
