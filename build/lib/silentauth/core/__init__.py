"""Pure logic: tokens, keys, rotation, sessions, policy. No HTTP, no SQL."""
