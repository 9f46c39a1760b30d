"""Stateful stores: the MySQL database and its users, the cache, the MongoDB URI secret."""
