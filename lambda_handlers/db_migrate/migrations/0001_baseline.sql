-- The five tables exactly as Hibernate 6 (ddl-auto: update) created them for the Spring
-- employee service. IF NOT EXISTS adopts an existing database in place: present tables and
-- their rows are kept untouched, and yoyo records this migration as the baseline.
CREATE TABLE IF NOT EXISTS employees (
    id bigint NOT NULL AUTO_INCREMENT,
    annual_leave_balance float(53),
    attendance_count integer,
    created_at datetime(6),
    department varchar(100) NOT NULL,
    email varchar(100),
    name varchar(100) NOT NULL,
    position varchar(100) NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT UK_employees_email UNIQUE (email)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS attendance (
    id bigint NOT NULL AUTO_INCREMENT,
    check_in_time datetime(6) NOT NULL,
    check_out_time datetime(6),
    created_at datetime(6),
    employee_id bigint NOT NULL,
    status varchar(255),
    work_hours float(53),
    PRIMARY KEY (id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS leaves (
    id bigint NOT NULL AUTO_INCREMENT,
    created_at datetime(6),
    days integer NOT NULL,
    employee_id bigint NOT NULL,
    end_date date NOT NULL,
    reason varchar(255),
    start_date date NOT NULL,
    status varchar(255),
    PRIMARY KEY (id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS quests (
    id bigint NOT NULL AUTO_INCREMENT,
    created_at datetime(6),
    created_by bigint NOT NULL,
    department varchar(50) NOT NULL,
    description text,
    reward_days float(53) NOT NULL,
    status varchar(20),
    title varchar(200) NOT NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS quest_progress (
    id bigint NOT NULL AUTO_INCREMENT,
    accepted_at datetime(6),
    approved_at datetime(6),
    claimed_at datetime(6),
    completed_at datetime(6),
    employee_id bigint NOT NULL,
    quest_id bigint NOT NULL,
    status varchar(20),
    PRIMARY KEY (id)
) ENGINE=InnoDB;
