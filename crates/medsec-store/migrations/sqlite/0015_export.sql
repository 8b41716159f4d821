-- Event export to SIEMs and webhooks. The events are rows that already commit with what they
-- record (audit entries, alerts): each sink keeps, per source, the position up to which it has
-- delivered (or filtered out) everything, moved only after delivery, so a crash or a receiver
-- that is down loses nothing; an event a sink refuses for good is kept as a dead letter.
CREATE TABLE export_cursors (
    sink           TEXT NOT NULL,
    source         TEXT NOT NULL,
    position       INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (sink, source)
) STRICT;

CREATE TABLE export_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink           TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event          TEXT NOT NULL,
    error          TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    at_ms          INTEGER NOT NULL
) STRICT;
CREATE INDEX export_dead_letters_sink ON export_dead_letters (sink, id);
