"""Host roles for pyinfra: ``@deploy`` functions that deploys/*.py call, in runbook order.

Each role reads only inventory data (addresses, pools, sizes) and the env's SOPS secrets,
which are decrypted on the machine running pyinfra and reach hosts only through
:func:`nornos_infra.roles.ops.secret_file`, which never shows content in ``--diff``.
"""
