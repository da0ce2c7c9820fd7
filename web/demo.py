"""Demo mode's data: a handful of users who follow each other and have posts, and one block."""

from __future__ import annotations

from storage import Storage

DEMO_USERS = [(1, "alice"), (2, "bob"), (3, "carol"), (4, "dave"), (5, "erin")]
DEMO_FOLLOWS = [
    (follower, followee) for follower, _ in DEMO_USERS for followee, _ in DEMO_USERS if follower != followee
]
DEMO_POSTS = [(100 + user_id, user_id) for user_id, _ in DEMO_USERS]  # post 10N belongs to user N
DEMO_BLOCKS = [(5, 4)]  # erin has blocked dave: the demo page shows dave that erin does not accept his messages


def seed_demo_data(storage: Storage) -> None:
    """Add the demo users, follows, posts and blocks that are missing; existing rows are left alone."""
    storage.add_users(DEMO_USERS)
    storage.add_follows(DEMO_FOLLOWS)
    storage.add_posts(DEMO_POSTS)
    storage.add_blocks(DEMO_BLOCKS)
