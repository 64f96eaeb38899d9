"""The gateway of the cluster example: the same workflow, registered as `steps`.

`smithers gateway examples/cluster/gateway_app.py:gateway --db ...` (run.py starts it).
No auth: it listens on the loopback address only.
"""

from steps import workflow

from smithers_gateway import Gateway

gateway = Gateway().register("steps", workflow, description="three tasks in a row")
