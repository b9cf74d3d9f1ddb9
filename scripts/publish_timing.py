"""Wall time of ``xgov-digests publish`` for N digests against moto's S3 server on 127.0.0.1:
a first publish, a publish with nothing changed, and one after one digest changed.

    .venv/bin/python -m scripts.publish_timing 200
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

from configobj import ConfigObj

from tests.fixtures.locals3 import LocalS3
from tests.fixtures.publish_site import S3, Site
from tests.fixtures.s3proxy import S3Proxy


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    server = LocalS3()
    proxy = S3Proxy(server.server.get_host_and_port())
    try:
        s3 = S3(server, proxy)
        bucket = server.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
        site = Site(Path(tempfile.mkdtemp()) / "ws", s3, bucket)
        config = ConfigObj(str(site.path / ".dvc/config"))
        config['remote "r2"']["endpointurl"] = server.endpoint  # straight to moto, not through the proxy
        config.write()
        repos = site.add(n)
        site.write()
        for label in ("first publish", "nothing changed", "one digest changed"):
            if label == "one digest changed":
                site.change(repos[n // 2])
                site.write()
            start = time.perf_counter()
            result = site.publish()
            print(
                f"{n} digests, {label}: {time.perf_counter() - start:.2f} s wall; "
                f"{result.stdout.strip().splitlines()[-1]}"
            )
    finally:
        proxy.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
