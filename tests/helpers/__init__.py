"""What the test modules share: service and database processes, clients, raw sockets, and checks.

Test modules and conftest files import from here, never from each other. Helpers import only
from this package and from the service's own modules.
"""
