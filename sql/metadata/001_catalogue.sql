-- Content catalogue. Tables are created without foreign keys: with Citus on, they are distributed
-- (or made reference tables) first, and the keys are added afterwards (002), in an order Citus accepts.
CREATE TABLE IF NOT EXISTS genres (
    genre_id    smallint PRIMARY KEY,
    name        text NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS cast_crew (
    person_id   integer PRIMARY KEY,
    full_name   text NOT NULL,
    birth_year  smallint,
    country     text
);

CREATE TABLE IF NOT EXISTS content_metadata (
    content_id        uuid PRIMARY KEY,
    title             text NOT NULL,
    original_title    text,
    release_date      date,
    duration_minutes  integer CHECK (duration_minutes > 0),
    content_type      text NOT NULL CHECK (content_type IN ('movie', 'series', 'documentary')),
    summary           text,
    thumbnail_url     text,
    trailer_url       text,
    rating            numeric(3, 1) CHECK (rating >= 0 AND rating <= 10),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS content_genres (
    content_id  uuid NOT NULL,
    genre_id    smallint NOT NULL,
    PRIMARY KEY (content_id, genre_id)
);

CREATE TABLE IF NOT EXISTS content_cast_crew (
    content_id      uuid NOT NULL,
    person_id       integer NOT NULL,
    role            text NOT NULL CHECK (role IN ('actor', 'director', 'writer', 'producer')),
    character_name  text,
    billing_order   smallint,
    PRIMARY KEY (content_id, person_id, role)
);

CREATE TABLE IF NOT EXISTS trending_daily (
    date                date NOT NULL,
    content_id          uuid NOT NULL,
    views               bigint NOT NULL DEFAULT 0 CHECK (views >= 0),
    watch_time_minutes  bigint NOT NULL DEFAULT 0 CHECK (watch_time_minutes >= 0),
    PRIMARY KEY (content_id, date)
);

CREATE INDEX IF NOT EXISTS content_metadata_type_release_idx ON content_metadata (content_type, release_date);
CREATE INDEX IF NOT EXISTS content_genres_genre_idx ON content_genres (genre_id);
CREATE INDEX IF NOT EXISTS content_cast_crew_person_idx ON content_cast_crew (person_id);
CREATE INDEX IF NOT EXISTS trending_daily_date_views_idx ON trending_daily (date, views DESC);
