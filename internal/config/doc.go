// Package config loads the agent's configuration the way the Python
// clearml-agent 1.9.2 does, and exposes the keys the daemon needs as typed
// fields.
//
// # Layers
//
// Load builds one HOCON tree from these layers; a later layer wins, key by
// key (objects are merged, anything else is replaced):
//
//  1. The built-in defaults in defaults.conf (upstream's agent, api and sdk
//     default files, limited to the keys the daemon reads or prints).
//
//  2. CLEARML_CONFIG_PATH (or TRAINS_CONFIG_PATH): a directory read like the
//     upstream default folder. Every *.conf file under <dir>/default, and
//     then under <dir>/<TRAINS_ENV> when TRAINS_ENV names another
//     environment, is placed under a key made of its sub-directories and its
//     file stem: <dir>/default/sdk.conf becomes "sdk", default/a/b.conf "a.b".
//
//  3. Local files: ~/trains.conf and then ~/clearml.conf; a missing one is
//     silently empty. When --config-file (LoadOptions.ConfigFile) or else
//     CLEARML_CONFIG_FILE / TRAINS_CONFIG_FILE is set, only that file is
//     read. --config-file must name an existing file; the variables, as
//     upstream, may name a missing one.
//
//  4. Dynamic overrides: every variable CLEARML_AGENT__A__B=v sets a.b (the
//     path lowercased, "__" becoming "."), the value parsed as HOCON, so
//     "true", "[1, 2]" or "{x: 1}" keep their types. Variables are applied
//     in name order. An empty value sets the empty string.
//
//  5. Upstream's vault overrides are an enterprise server feature and are
//     not loaded here.
//
//  6. The specific variables of the table below, applied only when
//     non-empty (after trimming spaces); the first set name of a row wins.
//
// The variables of layer 6 and the keys they set:
//
//	CLEARML_API_HOST, TRAINS_API_HOST                          api.api_server
//	CLEARML_FILES_HOST, TRAINS_FILES_HOST                      api.files_server
//	CLEARML_WEB_HOST, TRAINS_WEB_HOST                          api.web_server
//	CLEARML_API_ACCESS_KEY, TRAINS_API_ACCESS_KEY              api.credentials.access_key
//	CLEARML_API_SECRET_KEY, TRAINS_API_SECRET_KEY              api.credentials.secret_key
//	CLEARML_WORKER_NAME, TRAINS_WORKER_NAME                    agent.worker_name
//	CLEARML_WORKER_ID, TRAINS_WORKER_ID                        agent.worker_id
//	CLEARML_CUDA_VERSION, TRAINS_CUDA_VERSION, CUDA_VERSION    agent.cuda_version
//	CLEARML_CUDNN_VERSION, TRAINS_CUDNN_VERSION, CUDNN_VERSION agent.cudnn_version
//	CLEARML_CPU_ONLY, TRAINS_CPU_ONLY, CPU_ONLY (boolean)      agent.cpu_only
//	CLEAMRL_AGENT_CRASH_ON_EXCEPTION (sic, upstream's name),
//	CLEARML_AGENT_CRASH_ON_EXCEPTION (ours) (boolean)          agent.crash_on_exception
//	AWS_ACCESS_KEY_ID                                          sdk.aws.s3.key
//	AWS_SECRET_ACCESS_KEY                                      sdk.aws.s3.secret
//	AWS_DEFAULT_REGION                                         sdk.aws.s3.region
//	AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY                   sdk.azure.storage.containers (appended)
//	GOOGLE_APPLICATION_CREDENTIALS                             sdk.google.storage.credentials_json
//	CLEARML_API_DEFAULT_REQ_METHOD                             api.http.default_method
//
// The Azure pair is appended as {account_name, account_key}.
//
// Then, as upstream: api.host is copied from api.api_server when empty
// (before step 6), and an empty agent.worker_name becomes the host name.
// Boolean variables accept y/yes/t/true/on/1 and n/no/f/false/off/0 in any
// case; any other value is an error naming the variable (upstream either
// crashes or silently ignores it, depending on the variable).
//
// # Keys read into typed fields
//
//	key                                   default        environment (wins over the key)
//	api.api_server, else api.host         none           CLEARML_API_HOST, TRAINS_API_HOST
//	api.web_server                        derived [1]    CLEARML_WEB_HOST, TRAINS_WEB_HOST
//	api.files_server                      derived [1]    CLEARML_FILES_HOST, TRAINS_FILES_HOST
//	api.credentials.access_key            ""             CLEARML_API_ACCESS_KEY, TRAINS_API_ACCESS_KEY
//	api.credentials.secret_key            ""             CLEARML_API_SECRET_KEY, TRAINS_API_SECRET_KEY
//	-                                     ""             CLEARML_AUTH_TOKEN
//	api.verify_certificate [2]            true           CLEARML_API_HOST_VERIFY_CERT, TRAINS_API_HOST_VERIFY_CERT
//	api.http.default_method               GET            CLEARML_API_DEFAULT_REQ_METHOD
//	api.auth.token_expiration_threshold_sec 43200        -
//	api.auth.request_token_expiration_sec 0 (unset)      -
//	-                                     true           CLEARML_NO_DEFAULT_SERVER, TRAINS_NO_DEFAULT_SERVER [3]
//	agent.worker_id                       ""             CLEARML_WORKER_ID, TRAINS_WORKER_ID
//	agent.worker_name                     host name      CLEARML_WORKER_NAME, TRAINS_WORKER_NAME
//	agent.git_user, git_pass, git_host    ""             CLEARML_AGENT_GIT_USER/_PASS/_HOST, TRAINS_AGENT_GIT_*
//	agent.cpu_only                        false          CLEARML_CPU_ONLY, TRAINS_CPU_ONLY, CPU_ONLY
//	agent.cuda_version, cudnn_version     "" (detect)    CLEARML_CUDA_VERSION, CUDA_VERSION, ... (table above)
//	agent.default_python                  "" (detect)    -
//	agent.crash_on_exception              false          CLEAMRL_AGENT_CRASH_ON_EXCEPTION (sic)
//	agent.reload_config                   false          -
//	agent.task_ping_interval_sec          60 (0 = off)   -
//	agent.polling_interval_sec [4]        5              CLEARML_AGENT_QUEUE_POLL_FREQ_SEC
//	agent.status_report_interval_sec [4]  30             CLEARML_AGENT_STATUS_REPORT_FREQ_SEC
//	agent.abort_grace_period_sec [4]      10             -
//	agent.reattach_timeout_sec [4]        600 (0 = never) -
//	agent.metrics_address [4]             "" (off)       -
//	agent.suppress_carriage_return        true           -
//	agent.uptime, agent.downtime          none           -
//	agent.apply_environment               true           CLEARML_AGENT_ENABLE_ENV_CONFIG_SECTION
//	agent.apply_files                     true           CLEARML_AGENT_ENABLE_FILES_CONFIG_SECTION
//	environment {KEY: value}              {}             -
//	agent.resource_monitoring.disk_use_path home dir     -
//	agent.sanitize_config_printout.*      defaults.conf  -            (used by Masked and Secrets)
//	agent.hide_docker_command_env_vars.*  defaults.conf  CLEARML_AGENT_DOCKER_ARGS_HIDE_ENV
//
// [1] As upstream: when unset, the web server is derived from the API server
// ("://api." becomes "://app.", port 8008 becomes 8080) and the files server
// from the web server ("app." becomes "files.", any port becomes 8081); when
// nothing can be derived the field stays empty.
//
// [2] A value that is not a boolean is a CA bundle path (API.CABundle), as
// requests' verify= accepts.
//
// [3] When false, an unconfigured server falls back to upstream's demo
// server. The built-in demo key and secret are not filled in: missing
// credentials stay empty and the caller decides.
//
// [4] Our additions; upstream has no such keys. They have code defaults and
// are not in defaults.conf, so the printed configuration matches upstream's.
// Upstream applies a 5 s minimum to the --polling-interval flag; that is the
// command line's business, and CLEARML_AGENT_QUEUE_POLL_FREQ_SEC bypasses it.
// Intervals accept fractional seconds.
//
// Every other key is available through Config.Raw.
//
// # Errors
//
// Load wraps every error with "loading configuration: ". Syntax errors and
// values of the wrong type are *hocon.ParseError values (reachable with
// errors.As) naming the file, line, column and dotted key, for example
//
//	loading configuration: /home/u/clearml.conf:7:29: key "agent.task_ping_interval_sec": cannot use string "abc" as a number
//
// Values set by CLEARML_AGENT__ variables report "$" and the variable's name
// as the file. Validate checks what Load cannot (a server is configured, URLs and
// the HTTP method are valid, intervals are not negative) and returns
// *FieldError values around the sentinels ErrNoServer, ErrInvalidURL,
// ErrInvalidMethod and ErrNegative.
package config
