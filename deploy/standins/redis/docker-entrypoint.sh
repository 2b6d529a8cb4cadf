#!/bin/sh
# The official redis image's entrypoint, in substance: options alone run redis-server; as root,
# take ownership of the data directory and run redis-server as the redis user.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
# The official image's redis-server is built with protected mode off by default (the container
# network is the boundary); Debian's has it on, which refuses every client from another
# container. Turned off here ahead of the given options, so `--protected-mode yes` still wins.
if [ "$1" = 'redis-server' ] && [ -z "${REDIS_STANDIN_PROTECTED:-}" ]; then
  shift
  if [ "${1%.conf}" != "${1:-}" ]; then
    conf="$1"
    shift
    set -- redis-server "$conf" --protected-mode no "$@"
  else
    set -- redis-server --protected-mode no "$@"
  fi
  export REDIS_STANDIN_PROTECTED=set
fi
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
umask 0077
exec "$@"
