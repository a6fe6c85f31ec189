-- streamctl: after-distribution
-- Foreign keys, added once the tables are distributed (Citus accepts keys from distributed tables to
-- reference tables and between colocated tables on the distribution column). Keys to reference tables
-- need Citus to use one connection per node within the transaction; on plain PostgreSQL the setting is
-- an inert placeholder.
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'content_genres_content_fk') THEN
        ALTER TABLE content_genres ADD CONSTRAINT content_genres_content_fk
            FOREIGN KEY (content_id) REFERENCES content_metadata (content_id) ON DELETE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'content_genres_genre_fk') THEN
        ALTER TABLE content_genres ADD CONSTRAINT content_genres_genre_fk
            FOREIGN KEY (genre_id) REFERENCES genres (genre_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'content_cast_crew_content_fk') THEN
        ALTER TABLE content_cast_crew ADD CONSTRAINT content_cast_crew_content_fk
            FOREIGN KEY (content_id) REFERENCES content_metadata (content_id) ON DELETE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'content_cast_crew_person_fk') THEN
        ALTER TABLE content_cast_crew ADD CONSTRAINT content_cast_crew_person_fk
            FOREIGN KEY (person_id) REFERENCES cast_crew (person_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'trending_daily_content_fk') THEN
        ALTER TABLE trending_daily ADD CONSTRAINT trending_daily_content_fk
            FOREIGN KEY (content_id) REFERENCES content_metadata (content_id) ON DELETE CASCADE;
    END IF;
END
$$;
