"""System tier: deployments of several processes (supervisord, nginx, Redis, a browser, the bench)."""
