"""Workspace: metadata database, blob store, projects and what they hold."""

from defectlab.workspace.workspace import Workspace, resolve_root

__all__ = ["Workspace", "resolve_root"]
