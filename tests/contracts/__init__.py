"""What the platform passes to each pinned third-party component, checked against that component's contract
(k8s_charts/contracts/*.yaml, recorded from its source at the pinned tag; issue 18 item 2)."""
