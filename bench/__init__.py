"""Side-by-side benchmark of falco-risk, a raw-bytes floor and rotel-agent peers."""
