# managed by nornos-infra: shared by the backup scripts (sourced)
set -euo pipefail
. /etc/nornos/backup.env
STATUS=/var/lib/nornos/backup.status
WHAT=${WHAT:-backup}

METRICS_DIR=/var/lib/prometheus/node-exporter
JOB=${JOB:-$WHAT}  # the part of the run going on: $WHAT, then ${WHAT}_offsite

# the job's last run for Prometheus (the node exporter's textfile collector): when it finished,
# whether it succeeded, when it last succeeded, what its last success wrote (bytes); a failure
# keeps the last success's time and size. Written whole, then renamed into place.
publish_metrics() {
    local job="$1" ok="$2" bytes="${3:-}" file now last_ok
    [ -d "$METRICS_DIR" ] || return 0
    file="$METRICS_DIR/nornos_backup_$job.prom"
    now=$(date +%s)
    if [ "$ok" = 1 ]; then
        last_ok=$now
    else
        last_ok=$(sed -n 's/^nornos_backup_last_success_timestamp_seconds{[^}]*} //p' "$file" 2>/dev/null || true)
        bytes=$(sed -n 's/^nornos_backup_last_size_bytes{[^}]*} //p' "$file" 2>/dev/null || true)
    fi
    printf '%s\n' \
        "# HELP nornos_backup_last_run_timestamp_seconds When the backup job last finished, ok or not." \
        "# TYPE nornos_backup_last_run_timestamp_seconds gauge" \
        "nornos_backup_last_run_timestamp_seconds{backup=\"$job\"} $now" \
        "# HELP nornos_backup_last_success Whether the backup job's last run succeeded (1) or failed (0)." \
        "# TYPE nornos_backup_last_success gauge" \
        "nornos_backup_last_success{backup=\"$job\"} $ok" \
        "# HELP nornos_backup_last_success_timestamp_seconds When the backup job last succeeded (0: never)." \
        "# TYPE nornos_backup_last_success_timestamp_seconds gauge" \
        "nornos_backup_last_success_timestamp_seconds{backup=\"$job\"} ${last_ok:-0}" \
        "# HELP nornos_backup_last_size_bytes What the backup job's last success wrote, in bytes." \
        "# TYPE nornos_backup_last_size_bytes gauge" \
        "nornos_backup_last_size_bytes{backup=\"$job\"} ${bytes:-0}" > "$file.$$"
    chmod 644 "$file.$$" && mv -f "$file.$$" "$file"
}

notify_failure() {
    local reason="$1"
    publish_metrics "$JOB" 0 || true
    logger -t nornos-backup -p user.err "$WHAT FAILED on $(hostname): $reason"
    echo "failed $(date -u +%FT%TZ) $WHAT: $reason" > "$STATUS.$WHAT"
    if [ -n "${SLACK_WEBHOOK_URL:-}" ]; then
        curl -fsS -m 10 -X POST -H 'Content-Type: application/json' \
            -d "{\"text\":\"nornos ${NORNOS_ENV}: $WHAT failed on $(hostname): $reason\"}" \
            "$SLACK_WEBHOOK_URL" >/dev/null || logger -t nornos-backup "Slack notification failed too"
    fi
}

succeeded() {
    logger -t nornos-backup "$WHAT ok: $1"
    echo "ok $(date -u +%FT%TZ) $WHAT: $1" > "$STATUS.$WHAT"
}

# rclone against the env's Object Storage; its settings from the environment, never a config file
s3() {
    RCLONE_CONFIG_OBJ_TYPE=s3 RCLONE_CONFIG_OBJ_PROVIDER=Other RCLONE_CONFIG_OBJ_ENDPOINT="$S3_ENDPOINT" \
    RCLONE_CONFIG_OBJ_REGION="$S3_REGION" RCLONE_CONFIG_OBJ_FORCE_PATH_STYLE=true \
    RCLONE_CONFIG_OBJ_ACCESS_KEY_ID="$S3_ACCESS_KEY" RCLONE_CONFIG_OBJ_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
        rclone -q --s3-no-check-bucket --retries 3 --low-level-retries 3 --contimeout 15s --timeout 5m \
        ${S3_CA_FILE:+--ca-cert "$S3_CA_FILE"} "$@"
}

# rclone's own summary of what failed ("Failed to copyto: <cause>"), without its time stamp; it
# never prints a key
rclone_cause() {
    printf '%s\n' "$1" | grep -E 'Failed to|ERROR' | tail -n 1 | sed -E 's#^[0-9/]+ [0-9:]+ (ERROR : )?##'
}

# keep the newest $2 objects under obj:$S3_BUCKET/$1/ (their names sort by date); a delete leaves
# the copy as an older version, which the bucket's lock keeps for its lock period
prune_tier() {
    local dir="$1" keep="$2"
    s3 lsf --files-only "obj:$S3_BUCKET/$dir/" | sort -r | tail -n "+$(( keep + 1 ))" |
        while read -r old; do s3 deletefile "obj:$S3_BUCKET/$dir/$old" || return 1; done
}

# encrypt with age BEFORE the copy leaves the machine (the private key is not on this host), upload
# it to <prefix>/daily/, and also to weekly/ and monthly/ when it is the first copy of its ISO week
# or month (uploaded again, not copied on the server: a server-side copy into a locked bucket is
# refused by S3 services that want a checksum header on it), then prune each tier. Any failure
# fails the backup, naming the step.
offsite_copy() {
    local file="$1" prefix="$2" name tier dir first listing error
    [ -n "${S3_BUCKET:-}" ] || return 0
    if [ -z "${S3_ACCESS_KEY:-}" ] || [ -z "${S3_SECRET_KEY:-}" ]; then
        notify_failure "offsite copy to bucket $S3_BUCKET: the env's secrets have no object_storage_access_key/secret_key"
        exit 1
    fi
    [ -n "${BACKUP_AGE_RECIPIENT:-}" ] || { notify_failure "offsite copy: no backup_age_recipient in the env's secrets"; exit 1; }
    name="$(basename "$file").age"
    age -r "$BACKUP_AGE_RECIPIENT" -o "$file.age" "$file"
    if ! error=$(s3 copyto "$file.age" "obj:$S3_BUCKET/$prefix/daily/$name" 2>&1); then
        rm -f "$file.age"
        echo "$error" >&2
        notify_failure "offsite upload of $name to $S3_ENDPOINT bucket $S3_BUCKET failed: $(rclone_cause "$error")"
        exit 1
    fi
    for tier in "weekly:$(date -u +%G-W%V)" "monthly:$(date -u +%Y-%m)"; do
        dir="$prefix/${tier%%:*}" first="${tier#*:}"
        if ! listing=$(s3 lsf --files-only "obj:$S3_BUCKET/$dir/"); then
            rm -f "$file.age"
            notify_failure "offsite: cannot list $dir in bucket $S3_BUCKET"
            exit 1
        fi
        if ! grep -q "^$first--" <<<"$listing" && ! s3 copyto "$file.age" "obj:$S3_BUCKET/$dir/$first--$name"; then
            rm -f "$file.age"
            notify_failure "offsite upload of $name into $dir failed"
            exit 1
        fi
    done
    rm -f "$file.age"
    { prune_tier "$prefix/daily" "$OFFSITE_KEEP_DAILY" && prune_tier "$prefix/weekly" "$OFFSITE_KEEP_WEEKLY" &&
        prune_tier "$prefix/monthly" "$OFFSITE_KEEP_MONTHLY"; } ||
        { notify_failure "offsite retention of $prefix failed"; exit 1; }
}
