//! Client for session-server; see the workspace README.
