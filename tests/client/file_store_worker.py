"""One process of the shared-FileTokenStore test (run as a script).

argv: token_url api_url store_path clock_offset go_file threads
Prints ``ready`` once its TokenAuth has read the store, waits for ``go_file``,
then sends one request per thread and prints a JSON line of status codes.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import httpx

from silentauth.client import FileTokenStore, TokenAuth


def main() -> None:
    token_url, api_url, store_path, offset, go_file, threads = sys.argv[1:7]
    skew = float(offset)
    auth = TokenAuth(
        token_url=token_url, store=FileTokenStore(store_path), clock=lambda: time.time() + skew
    )
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not Path(go_file).exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    results: list[object] = []
    with httpx.Client(auth=auth, timeout=30) as client:

        def one() -> None:
            try:
                results.append(client.get(api_url).status_code)
            except Exception as exc:
                results.append(repr(exc))

        pool = [threading.Thread(target=one) for _ in range(int(threads))]
        for t in pool:
            t.start()
        for t in pool:
            t.join(30)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
