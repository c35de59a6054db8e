# managed by nornos-infra: interactive login shells (docs/SECURITY.md, "Host hardening")
# an idle shell closes after 15 minutes, and the session cannot lift the limit
if [ "${TMOUT:-}" != 900 ]; then
    TMOUT=900
    readonly TMOUT
    export TMOUT
fi
# files an admin creates are not readable by other accounts
umask 027
# no core dumps from a login session (they would hold what the session read)
ulimit -c 0
