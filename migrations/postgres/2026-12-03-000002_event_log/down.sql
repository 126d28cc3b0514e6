DROP TABLE ferry_log_timers;
DROP TABLE ferry_log_events;
DROP TABLE ferry_log_workflows;
