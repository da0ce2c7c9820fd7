"""What the test modules share: service and database processes, clients, raw sockets, and checks.

Test modules and conftest files import from here, never from each other; nothing here imports a
test module or a conftest file.
"""
