"""The ledger's rules: pure functions of their inputs (including "today"), no I/O."""
