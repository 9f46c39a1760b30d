"""The front door: the HTTP API, its route table, and the employee Lambda behind it."""
