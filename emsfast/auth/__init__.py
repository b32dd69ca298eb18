"""Users, groups, ACLs and password hashing (DESIGN.md §7)."""
