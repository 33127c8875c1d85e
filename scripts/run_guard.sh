#!/bin/bash
# Sourced by the launchers: refuse to start a run where a live run works, instead of writing over its log.
#   refuse_held_dirs DIR... : returns 1 with one line when a DIR/.run.lock names a running process
#   (or one on another host); a lock left by a killed run is ignored (the new run takes it over).
refuse_held_dirs() {
    local dir lock pid host
    for dir in "$@"; do
        lock="$dir/.run.lock"
        [ -f "$lock" ] || continue
        read -r pid host _ < "$lock"
        if [ "$host" != "$(hostname)" ] || kill -0 "$pid" 2>/dev/null; then
            echo "$dir is in use by a run (pid $pid on $host): wait for it to end or start from another directory" >&2
            return 1
        fi
    done
}
