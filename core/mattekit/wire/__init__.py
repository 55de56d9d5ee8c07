"""Talking to the local worker, standard library only: its wire format (:mod:`.protocol`) and client (:mod:`.client`).

The worker and its clients share :mod:`.protocol` and :mod:`.state` (the state file); the adapters use :mod:`.client`.
Python 3.8 syntax and relative imports inside this folder only: installers copy the folder beside each adapter as
``mattekit_wire``, so it runs in the host's own Python without mattekit or torch.
"""
