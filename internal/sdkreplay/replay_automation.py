# The SDK's PipelineController (clearml/automation/controller.py) and
# HyperParameterOptimizer with RandomSearch (clearml/automation/
# optimization.py), over replay_task.py's Task and replay_flows.py's
# ClearmlJob.


class PipelineController:
    """A pipeline of existing tasks. Run locally, start(queue) stores the
    DAG on the controller task and enqueues it (execute_remotely); run by
    an agent, start() launches each step as a clone of its base task, in
    order, and waits for it."""

    def __init__(self, session, name, project, version="1.0.0", poll_seconds=0.5):
        self.session, self.poll_seconds = session, poll_seconds
        pipelines = project + "/.pipelines"
        self.project = pipelines + "/" + name
        self.task = Task.init(session, self.project, name, "controller")
        if not running_remotely():
            get_or_create_project(session, pipelines, system_tags=["hidden"])
            get_or_create_project(session, self.project, project_id=self.task.data["project"],
                                  system_tags=["hidden", "pipeline"])
            self.task.set_system_tags(self.task.data["system_tags"] + ["pipeline"])
            self.task._set_runtime_properties({"version": version})
            self.task.set_user_properties(version=version)
        self.steps = []

    def add_step(self, name, base_task_project, base_task_name, parameter_override=None, parents=None,
                 execution_queue=None):
        """Task.get_task(project_name, task_name): the newest such task."""
        found = Task.query_tasks(self.session, project_name=[base_task_project],
                                 task_name=exact_match_regex(base_task_name), order_by=["-last_update"],
                                 system_tags=["-archived"], fetch_only_first_page=True)
        if not found:
            raise ValueError("base task %s/%s not found" % (base_task_project, base_task_name))
        base = Task.get_task(self.session, found[0]["id"])
        self.steps.append({"name": name, "base_task_id": base.id, "parameters": parameter_override or {},
                           "parents": parents or [], "queue": execution_queue})

    def start(self, queue="services"):
        if not running_remotely():
            self.task._set_configuration("Pipeline", json.dumps({"steps": self.steps}, indent=2), "dictionary",
                                         "pipeline state: DAG")
            self.task.execute_remotely(queue)
        dag = json.loads(self.task.get_configuration_object("Pipeline"))
        done = {}
        for step in dag["steps"]:
            for parent in step["parents"]:
                if done[parent]["status"] != "completed":
                    raise RuntimeError("step %s: parent %s did not complete" % (step["name"], parent))
            params = {k: self._resolve(v, done) for k, v in step["parameters"].items()}
            job = ClearmlJob(self.session, step["base_task_id"], parameter_override=params,
                             tags=["pipe: %s" % self.task.id], parent=self.task.id, project=self.task.data["project"])
            job.launch(step["queue"])
            self.task.report_text("Launching the next pipeline step: %s (%s)" % (step["name"], job.task.id))
            status = wait_jobs(self.session, [job], self.poll_seconds)[job.task.id]
            done[step["name"]] = {"id": job.task.id, "status": status}
            self.task.report_plot("Pipeline", "Execution Flow", {"data": [{"type": "scatter", "text": list(done)}],
                                                                  "layout": {"title": "Execution Flow"}})
            if status != "completed":
                raise RuntimeError("pipeline step %s ended %s" % (step["name"], status))
        self.task.report_text("pipeline completed: %s" % json.dumps(done, sort_keys=True))
        return done

    def _resolve(self, value, done):
        """${step.id} and ${step.artifacts.<name>.url} references."""
        def ref(m):
            step, _, path = m.group(1).partition(".")
            if path == "id":
                return done[step]["id"]
            if path.startswith("artifacts.") and path.endswith(".url"):
                task = Task.get_task(self.session, done[step]["id"])
                return task.artifacts[path[len("artifacts."):-len(".url")]]["uri"]
            raise ValueError("unsupported reference " + m.group(0))
        return re.sub(r"\$\{([^}]+)\}", ref, value) if isinstance(value, str) else value


class HyperParameterOptimizer:
    """RandomSearch: jobs cloned from the base task with random values,
    enqueued, at most max_concurrent at once; the objective read from each
    job's last_metrics, as Objective.get_objective does."""

    def __init__(self, session, base_task_id, hyper_parameters, objective_title, objective_series,
                 execution_queue, max_concurrent=2, total_max_jobs=4, poll_seconds=0.5, seed=1):
        self.session, self.base_task_id = session, base_task_id
        self.hyper_parameters, self.queue = hyper_parameters, execution_queue
        self.max_concurrent, self.total_max_jobs, self.poll_seconds = max_concurrent, total_max_jobs, poll_seconds
        self.metric = (hashlib.md5(objective_title.encode()).hexdigest(), hashlib.md5(objective_series.encode()).hexdigest())
        self.random = random.Random(seed)
        self.task = Task.current_task()
        self.task.update_parameters({"General/base_task_id": base_task_id, "General/objective_metric_title": objective_title,
                                     "General/objective_metric_series": objective_series, "General/optimizer": "RandomSearch"})
        base = Task.get_task(session, base_task_id)  # SearchStrategy._validate_base_task
        missing = [k for k in hyper_parameters if k not in base.get_parameters()]
        if missing:
            raise ValueError("base task has no parameters %s" % missing)
        self.results = {}

    def _sample(self, seen):
        while True:
            params = {k: str(self.random.choice(v)) for k, v in sorted(self.hyper_parameters.items())}
            key = json.dumps(params, sort_keys=True)
            if key not in seen or len(seen) >= _combinations(self.hyper_parameters):
                seen.add(key)
                return params

    def start(self):
        seen, running, launched = set(), [], 0
        while launched < self.total_max_jobs or running:
            while launched < self.total_max_jobs and len(running) < self.max_concurrent:
                job = ClearmlJob(self.session, self.base_task_id, parameter_override=self._sample(seen),
                                 tags=["optimizer"], parent=self.task.id, project=self.task.data["project"])
                job.launch(self.queue)
                running.append(job)
                launched += 1
            statuses = Task.tasks_status(self.session, [j.task.id for j in running])
            for job in list(running):
                if statuses[job.task.id] in ("stopped", "completed", "failed", "published"):
                    running.remove(job)
                    self.results[job.task.id] = (statuses[job.task.id], self.get_objective(job.task.id))
            if running:
                time.sleep(self.poll_seconds)
        return self.results

    def get_objective(self, task_id):
        found = Task.query_tasks(self.session, task_ids=[task_id],
                                 only_fields=["last_metrics.%s.%s" % self.metric])
        try:
            return found[0]["last_metrics"][self.metric[0]][self.metric[1]]["value"]
        except (IndexError, KeyError, TypeError):
            return None

    def get_top_experiments(self, top_k):
        """Objective.get_top_tasks: the optimizer's children by objective."""
        return Task.get_tasks(self.session, {"page_size": top_k, "page": 0, "parent": self.task.id,
                                             "order_by": ["-last_metrics.%s.%s.value" % self.metric],
                                             "only_fields": ["last_metrics", "hyperparams"], "fetch_only_first_page": True})


def _combinations(params):
    n = 1
    for v in params.values():
        n *= len(v)
    return n


class PipelineDecorator:
    """PipelineDecorator.run_locally(): the pipeline function runs here;
    each component call becomes a task made from the component's code
    (_create_task_from_function), run as a local sub-process
    (LocalClearmlJob), whose return value, an artifact, the controller
    reads back from the step's execution.artifacts."""

    def __init__(self, session, name, project, version="1.0.0"):
        self.session = session
        pipelines = project + "/.pipelines"
        self.project = pipelines + "/" + name
        self.task = Task.init(session, self.project, name, "controller")
        get_or_create_project(session, pipelines, system_tags=["hidden"])
        get_or_create_project(session, self.project, project_id=self.task.data["project"], system_tags=["hidden", "pipeline"])
        self.task.set_system_tags(self.task.data["system_tags"] + ["pipeline"])
        self.task._set_runtime_properties({"version": version})

    def component(self, name, code, **kwargs):
        task = Task.create(self.session, self.project, name, "data_processing")
        task._edit(script={"binary": "python3", "entry_point": name + ".py", "working_dir": ".", "diff": code})
        task.update_parameters({"kwargs/%s" % k: json.dumps(v) for k, v in kwargs.items()})
        task.set_parent(self.task.id)
        task.set_tags(["pipe: %s" % self.task.id])
        # LocalClearmlJob.launch and wait_for_process
        task.mark_started()
        path = os.path.join(tempfile.mkdtemp(), name + ".py")
        open(path, "w").write(code)
        env = dict(os.environ, CLEARML_TASK_ID=task.id, CLEARML_LOG_TASK_TO_BACKEND="1", CLEARML_SIMULATE_REMOTE_TASK="1")
        import subprocess
        if subprocess.call([sys.executable, path], env=env) == 0:
            task.mark_completed()
        else:
            self.session.send("tasks.failed", {"task": task.id, "force": True})
            raise RuntimeError("component %s failed" % name)
        step = Task.get_task(self.session, task.id)
        return json.loads(self.session.download(step.artifacts["return_object"]["uri"]))["value"]
