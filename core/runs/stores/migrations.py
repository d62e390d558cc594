"""The run store's schema migrations both back ends share, in portable SQL (SQLite and PostgreSQL).

Each back end's ``MIGRATIONS`` is its own first three (their types differ) followed by these.
"""
from __future__ import annotations

# Migrations 4 to 7, in order (version i -> i + 1, after the back ends' own first three),
# so both back ends reach the same schema version.
PORTABLE_MIGRATIONS: list[list[str]] = [
    [  # 4: learners' progress in the lessons (core/runs/progress.py); portable SQL (SQLite and PostgreSQL)
        """CREATE TABLE lesson_attempts (
            learner TEXT NOT NULL,
            lesson TEXT NOT NULL,
            item TEXT NOT NULL,
            kind TEXT NOT NULL,
            answer TEXT NOT NULL DEFAULT '',
            correct INTEGER,
            created DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX lesson_attempts_learner ON lesson_attempts(learner, lesson, item)",
        "CREATE INDEX lesson_attempts_item ON lesson_attempts(lesson, item)",
        """CREATE TABLE lesson_steps (
            learner TEXT NOT NULL,
            lesson TEXT NOT NULL,
            step TEXT NOT NULL,
            completed DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (learner, lesson, step)
        )""",
        """CREATE TABLE lesson_position (
            learner TEXT NOT NULL,
            lesson TEXT NOT NULL,
            step INTEGER NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (learner, lesson)
        )""",
    ],
    [  # 5: lineage: the run a run was cloned from, the sweep that queued it (plain, portable SQL)
        "ALTER TABLE runs ADD COLUMN parent TEXT",
        "ALTER TABLE runs ADD COLUMN sweep TEXT",
        "CREATE INDEX runs_sweep ON runs(sweep)",
    ],
    [  # 6: executors (core/runs/executors): which one runs the job, its handle there, DDP processes
        "ALTER TABLE runs ADD COLUMN executor TEXT",
        "ALTER TABLE runs ADD COLUMN job_ref TEXT",
        "ALTER TABLE runs ADD COLUMN world_size INTEGER NOT NULL DEFAULT 1",
    ],
    [  # 7: the classroom: the learner a run was started for (fair-share queue, queue positions)
        "ALTER TABLE runs ADD COLUMN learner TEXT",
        "CREATE INDEX runs_learner ON runs(learner, status)",
    ],
]
