"""Tether's host tools, by job (tools/README.md is the index). Run a tool by its
path (`python tools/board/deploy.py ...`, what the Makefile does) or import it as
`tools.board.deploy`; tools/common.py holds what several of them need."""
