# Tether car application: see docs/protocol.md for what it speaks.
VERSION = "0.1.0"
