"""Loaded by the official connector's Python (bench/ is put on its PYTHONPATH by compare.py).

airbyte-source-sendgrid 1.1.5 hard-codes https://api.sendgrid.com. When SENDGRID_BENCH_TARGET is set,
every request to that host is sent to the emulator instead, by rewriting the URL at the transport
adapter, below every session, retry and rate-limit layer of its CDK.
"""

import os

_TARGET = os.environ.get("SENDGRID_BENCH_TARGET", "").rstrip("/")
_HOSTS = ("https://api.sendgrid.com", "https://api.eu.sendgrid.com")

if _TARGET:
    import requests.adapters

    _original_send = requests.adapters.HTTPAdapter.send

    def _send_to_emulator(self, request, *args, **kwargs):
        for host in _HOSTS:
            if request.url.startswith(host):
                request.url = _TARGET + request.url[len(host):]
                break
        return _original_send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = _send_to_emulator
