# managed by nornos-infra: shared by the backup scripts (sourced)
set -euo pipefail
. /etc/nornos/backup.env
STATUS=/var/lib/nornos/backup.status
WHAT=${WHAT:-backup}

notify_failure() {
    local reason="$1"
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

# encrypt with age BEFORE the copy leaves the machine, then upload over the S3 API
offsite_copy() {
    local file="$1" prefix="$2"
    [ -n "${S3_BUCKET:-}" ] || return 0
    age -r "$BACKUP_AGE_RECIPIENT" -o "$file.age" "$file"
    RCLONE_CONFIG_OBJ_TYPE=s3 RCLONE_CONFIG_OBJ_PROVIDER=Other RCLONE_CONFIG_OBJ_ENDPOINT="$S3_ENDPOINT" \
    RCLONE_CONFIG_OBJ_ACCESS_KEY_ID="$S3_ACCESS_KEY" RCLONE_CONFIG_OBJ_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
        rclone copyto --s3-no-check-bucket "$file.age" "obj:$S3_BUCKET/$prefix/$(basename "$file").age"
    rm -f "$file.age"
}
