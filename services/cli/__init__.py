"""The `fordring` command: the embedded stack (up, status, down), the demo, and an ERP-like gRPC client."""
