# Task.delete and the Task.get_reported_* readers, the SDK's Datasets
# (clearml/datasets/dataset.py) and ClearmlJob (clearml/automation/job.py),
# sending what they send, over replay_task.py's Task.


def _all_events(task, event_type, batch_size=10000):
    """Task._get_all_events: scroll events.get_task_events to the end."""
    res = task.session.send("events.get_task_events", {"task": task.id, "order": "asc", "batch_size": batch_size,
                                                       "event_type": event_type})
    events, returned = list(res["events"]), res["returned"]
    while returned < res["total"]:
        res = task.session.send("events.get_task_events", {"task": task.id, "order": "asc", "batch_size": batch_size,
                                                           "event_type": event_type, "scroll_id": res["scroll_id"]})
        if not res["returned"]:
            break
        events.extend(res["events"])
        returned += res["returned"]
    return events


def _task_delete(self):
    """Task.delete(delete_artifacts_and_models=True), the SDK's _delete:
    collect the files, tasks.delete with force, then remove the files and
    the models (a model tasks.delete removed already answers 400/201)."""
    task = self.session.send("tasks.get_by_id", {"task": self.id})["task"]
    if task["status"] == "published":
        return False
    models = self.session.send("models.get_all", {"task": [self.id], "only_fields": ["id", "uri"]})["models"]
    event_uris = {e.get("url") for e in _all_events(self, "training_debug_image")} - {None}
    for e in _all_events(self, "plot"):
        for image in json.loads(e.get("plot_str") or "{}").get("layout", {}).get("images", []):
            event_uris.add(image.get("source"))
    artifact_uris = [a["uri"] for a in task["execution"]["artifacts"] if a["mode"] == "output"]
    res = self.session.send("tasks.delete", {"task": self.id, "force": True})
    # The SDK parses the answer with its typed model: deleted is a bool.
    if res.get("deleted") is not True:
        raise ValueError("Failed deleting task %s: %s" % (self.id, res))
    for uri in artifact_uris:
        self.session.delete_file(uri)
    for m in models:
        try:
            self.session.send("models.delete", {"model": m["id"], "force": False})
        except APIError as e:
            if (e.code, e.subcode) != (400, 201):
                raise
        self.session.delete_file(m["uri"])
    for uri in event_uris - {None}:
        self.session.delete_file(uri)
    return True


def _get_reported_plots(self, max_iterations=None):
    return self.session.send("events.get_task_plots", {"task": self.id, "iters": max_iterations or 1,
                                                       "no_scroll": True}).get("plots", [])


def _get_reported_console_output(self, number_of_reports=1):
    res = self.session.send("events.get_task_log", {"task": self.id, "order": "asc", "navigate_earlier": True,
                                                    "batch_size": number_of_reports})
    return [e.get("msg", "") for e in res.get("events", [])]


def _get_all_reported_scalars(self):
    out = {}
    for e in _all_events(self, "training_stats_scalar", batch_size=1000):
        series = out.setdefault(e["metric"], {}).setdefault(e["variant"], {"name": e["variant"], "x": [], "y": []})
        series["x"].append(e["iter"])
        series["y"].append(e["value"])
    return out


Task.delete = _task_delete
Task.get_reported_plots = _get_reported_plots
Task.get_reported_console_output = _get_reported_console_output
Task.get_all_reported_scalars = _get_all_reported_scalars


class Dataset:
    TAG, HIDDEN, STATE, DATA, STRUCT = "dataset", "hidden", "state", "data", "Dataset Struct"

    def __init__(self, session, task, created, version=None):
        """Dataset.__init__: a new task (created) or an existing one."""
        self.session, self.task, self.id = session, task, task.id
        self.file_entries, self.graph, self.dirty = {}, {task.id: []}, False
        self.created = created
        self.changed = {"files added": 0, "files removed": 0, "files modified": 0}
        if not created:
            state = task.artifacts.get(self.STATE)  # walks execution.artifacts
            if state:
                self.changed.update({k: int(v) for k, v in state.get("display_data") or []})
            if "/.datasets/" not in (task.get_project_name() or ""):
                raise ValueError("not a dataset project")
        self.version = version or task._get_runtime_properties().get("version")

    @staticmethod
    def _hidden_project(project, name):
        parent = project + "/.datasets"
        return parent + "/" + name, parent

    @classmethod
    def create(cls, session, dataset_name, dataset_project, dataset_version=None, description=None):
        hidden, parent = cls._hidden_project(dataset_project, dataset_name)
        task = Task.create(session, hidden, dataset_name, "data_processing")
        get_or_create_project(session, parent, system_tags=[cls.HIDDEN])
        get_or_create_project(session, hidden, project_id=task.data["project"], system_tags=[cls.HIDDEN, cls.TAG])
        task.set_output_uri(session.files)  # task.output_uri = True: the files server
        task.set_system_tags(task.data["system_tags"] + [cls.TAG])
        task.mark_started()
        # task.data.script.diff = ...: the SDK needs the script section.
        script = task.data["script"]
        script["diff"] = ("from clearml import Dataset\n\nds = Dataset.create(dataset_project='%s', dataset_name='%s', "
                          "dataset_version='%s')\n" % (hidden, dataset_name, dataset_version))
        script["working_dir"], script["entry_point"] = ".", "register_dataset.py"
        script["requirements"] = {"pip": "clearml == 2.1.7\n"}
        task._edit(script=script)
        session.send("tasks.ping", {"task": task.id})  # DevWorker.register
        ds = cls(session, task, created=True, version=dataset_version)
        if not ds.version:
            _, latest = cls._get_dataset_id(session, dataset_project, dataset_name)
            ds.version = latest and _next_version(latest)
        ds.version = ds.version or "1.0.0"
        runtime = task._get_runtime_properties()
        task.set_user_properties(version=ds.version)
        task._set_runtime_properties({"orig_dataset_name": runtime.get("orig_dataset_name", task.data["name"]),
                                      "orig_dataset_id": runtime.get("orig_dataset_id", task.id),
                                      "version": ds.version})
        if description:
            task.set_comment(description)
        ds._serialize()
        ds._report_dataset_struct()
        task.report_text("ClearML results page: %s/projects/%s/tasks/%s/output/log" % (session.host, task.data["project"], task.id))
        return ds

    def _add_script_call(self, func, **kwargs):
        if not self.created:
            return
        args = "".join("\n    %s=%r" % kv for kv in kwargs.items())
        self.task.data["script"]["diff"] += "ds.%s(%s)\n" % (func, args + "\n" if args else "")
        self.task._edit(script=self.task.data["script"])

    def add_files(self, path):
        self.dirty = True
        self.task.report_text("Adding files to dataset: %s" % {"path": path})
        added = 0
        for root, _, files in os.walk(path):
            for f in sorted(files):
                full = os.path.join(root, f)
                data = open(full, "rb").read()
                rel = os.path.relpath(full, path)
                self.file_entries[rel] = {"relative_path": rel, "hash": hashlib.sha256(data).hexdigest(),
                                          "parent_dataset_id": self.id, "size": len(data), "artifact_name": None,
                                          "local_path": full}
                added += 1
        self.task.report_text("Generating SHA2 hash for %d files" % added)
        self.changed["files added"] += added
        self._add_script_call("add_files", path=path)
        self._serialize()
        return added

    def _serialize(self, chunk_lookup=False):
        state = {"file_count": len(self.file_entries), "total_size": sum(e["size"] for e in self.file_entries.values()),
                 "dataset_file_entries": list(self.file_entries.values()), "dataset_link_entries": [],
                 "dependency_graph": self.graph, "id": self.id, "dirty": self.dirty}
        if chunk_lookup:
            state["dependency_chunk_lookup"] = {self.id: len(self._data_artifacts())}
        preview = "Dataset state\nFiles added/modified: %d\nCurrent dependency graph: %s\n" % (
            len(self.file_entries), json.dumps(self.graph, sort_keys=True))
        self.task.upload_artifact(self.STATE, state, preview=preview, metadata=self.changed)
        self.task._set_runtime_properties({"ds_file_count": len(self.file_entries), "ds_link_count": 0,
                                           "ds_total_size": state["total_size"], "ds_change_add": self.changed["files added"],
                                           "ds_change_remove": 0, "ds_change_modify": 0, "ds_change_size": state["total_size"]})

    def _data_artifacts(self):
        return [k for k in self.task.artifacts if k == self.DATA or k.startswith(self.DATA + "_")]

    def upload(self):
        """Zip the pending files and upload the zip as the data artifact."""
        self.task.report_text("Uploading dataset files: %s" % {"show_progress": True})
        pending = [e for e in self.file_entries.values() if e["local_path"]]
        if pending:
            zip_path = os.path.join(tempfile.mkdtemp(), "dataset.%s.%s.zip" % (self.id, uuid.uuid4().hex[:8]))
            with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
                for e in pending:
                    z.write(e["local_path"], e["relative_path"])
            self.task.report_text("Uploading dataset changes (%d files compressed) to %s" % (len(pending), self.session.files))
            self.task.upload_artifact(self.DATA, zip_path, preview="\n".join(e["relative_path"] for e in pending))
            for e in pending:
                e["artifact_name"], e["local_path"] = self.DATA, None
            self._serialize()
        self._add_script_call("upload")
        self.dirty = False
        self._serialize()

    def finalize(self):
        if self.dirty:
            raise ValueError("Cannot finalize dataset, pending uploads. Call Dataset.upload(...)")
        status = self.task.get_status()
        if status not in ("in_progress", "created"):
            raise ValueError("Cannot finalize dataset, status '%s' is not valid" % status)
        self.task.report_text("Finalizing dataset")
        self._serialize(chunk_lookup=True)
        self._add_script_call("finalize")
        self._report_dataset_struct()
        self._report_dataset_genealogy()
        self.task.mark_completed()  # after task.close(), which flushes only
        return True

    def _report_dataset_struct(self):
        struct = {}
        for i, (node, parents) in enumerate(sorted(self.graph.items())):
            t = Task.get_task(self.session, node)
            last = self.session.send("tasks.get_all", {"id": [node], "only_fields": ["last_update"]})["tasks"][0]
            struct[str(i)] = {"job_id": node, "status": t.data["status"], "last_update": last.get("last_update"),
                              "parents": parents, "job_size": t._get_runtime_properties().get("ds_total_size"),
                              "name": t.data["name"], "version": t._get_runtime_properties().get("version")}
        self.task._set_configuration(self.STRUCT, json.dumps(struct, indent=2), "json", "Structure of the dataset")

    def _report_dataset_genealogy(self):
        names = {t["id"]: t["name"] for t in Task.query_tasks(self.session, task_ids=list(self.graph),
                                                              only_fields=["id", "name"], search_hidden=True)}
        self.task.report_plot("__Dataset Genealogy", "", {"data": [{"type": "scatter", "text": list(names)}], "layout": {}})
        self.task.report_plot("__Dataset Summary", "Details", {"data": [{"type": "table"}], "layout": {"title": "Files by parent dataset id"}})
        content = "File Name (%d files), File Size, Hash (SHA2)\n" % len(self.file_entries) + "\n".join(
            "%s, %d, %s" % (e["relative_path"], e["size"], e["hash"]) for e in self.file_entries.values())
        self.task._set_configuration("Dataset Content", content, "CSV", "Dataset content preview")

    def publish(self):
        if self.task.get_status() in ("in_progress", "created", "failed"):
            raise ValueError("Cannot publish dataset, dataset in status %s." % self.task.data["status"])
        self.task.publish()

    @classmethod
    def _get_dataset_id(cls, session, dataset_project, dataset_name, dataset_filter=None, shallow_search=True):
        flt = dict(dataset_filter or {})
        flt.setdefault("system_tags", [cls.TAG])
        flt.setdefault("order_by", ["-last_update"])
        hidden, _ = cls._hidden_project(dataset_project, dataset_name)
        found = Task.query_tasks(session, project_name=[hidden], task_name=exact_match_regex(dataset_name),
                                 fetch_only_first_page=shallow_search, only_fields=["id", "runtime.version"],
                                 search_hidden=True, **flt)
        best = None
        for d in found:
            v = (d.get("runtime") or {}).get("version")
            if best is None or (v and _version_key(v) > _version_key((best.get("runtime") or {}).get("version") or "0")):
                best = d
        return (best["id"], (best.get("runtime") or {}).get("version")) if best else (None, None)

    @classmethod
    def get(cls, session, dataset_project, dataset_name, alias=None):
        """Dataset.get by project and name (the newest version)."""
        dataset_id, _ = cls._get_dataset_id(session, dataset_project, dataset_name, dataset_filter={
            "system_tags": ["__$all", cls.TAG, "__$not", "archived"], "type": ["data_processing"]}, shallow_search=False)
        if not dataset_id:
            raise ValueError("Could not find Dataset %s/%s" % (dataset_project, dataset_name))
        ds = cls._get_instance(session, dataset_id)
        current = Task.current_task()
        if current:
            if alias:
                current.update_parameters({"Datasets/%s" % alias: dataset_id})
            used = list(current._get_runtime_properties().get("datasets") or [])
            orig = cls._get_instance(session, dataset_id)
            current._set_runtime_properties({"datasets": used + [dataset_id],
                                             "orig_datasets.%s/%s" % (dataset_name, orig.version): dataset_id})
        return ds

    @classmethod
    def _get_instance(cls, session, dataset_id):
        task = Task.get_task(session, dataset_id)
        if cls.TAG not in task.data["system_tags"]:
            raise ValueError("Provided id=%s is not a Dataset ID" % task.id)
        if task.data["status"] == "created":
            raise ValueError("Dataset id=%s is in draft mode, delete and recreate it" % task.id)
        state = json.loads(session.download(task.artifacts[cls.STATE]["uri"]))
        ds = cls(session, task, created=False)
        ds.graph = state.get("dependency_graph", {})
        ds.file_entries = {e["relative_path"]: e for e in state.get("dataset_file_entries", [])}
        return ds

    def get_local_copy(self):
        if self.task.get_status() in ("in_progress", "created", "failed"):
            raise ValueError("Cannot get a local copy of a dataset that was not finalized/closed")
        folder = os.path.join(tempfile.gettempdir(), "clearml-replay-datasets", "ds_" + self.id)
        os.makedirs(folder, exist_ok=True)
        for name in self._data_artifacts():
            art = self.task.artifacts[name]
            data = self.session.download(art["uri"])
            if hashlib.sha256(data).hexdigest() != art["hash"]:
                raise ValueError("dataset archive %s does not match its hash" % name)
            zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
        return folder

    @classmethod
    def delete(cls, session, dataset_id):
        """Dataset.delete(dataset_id=...): get it, then Task.delete with its
        artifacts and models."""
        ds = cls._get_instance(session, dataset_id)
        return ds.task.delete()

    @classmethod
    def list_datasets(cls, session, dataset_project):
        found = Task.query_tasks(session, project_name=[exact_match_regex(dataset_project), "^%s/.*" % re.escape(dataset_project)],
                                 system_tags=[cls.TAG], type=["data_processing"],
                                 status=["stopped", "published", "completed", "closed"],
                                 only_fields=["created", "id", "name", "project", "tags", "runtime"],
                                 search_hidden=True, exact_match_regex_flag=False)
        ids = sorted({d["project"] for d in found if d.get("project")})
        names = {p["id"]: p["name"] for p in session.send("projects.get_all", {"id": ids, "page": 0, "page_size": 500})["projects"]}
        return [{"name": d["name"], "project": names[d["project"]].partition("/.datasets/")[0], "id": d["id"],
                 "version": (d.get("runtime") or {}).get("version")} for d in found if d.get("project")]


def _version_key(v):
    return tuple(int(x) if x.isdigit() else 0 for x in str(v).split("."))


def _next_version(v):
    parts = list(_version_key(v)) + [0, 0, 0]
    return "%d.%d.%d" % (parts[0], parts[1], parts[2] + 1)


class ClearmlJob:
    """automation.job.ClearmlJob: clone the base task with overrides."""

    def __init__(self, session, base_task_id, parameter_override=None, tags=None, parent=None, project=None):
        self.session = session
        base = Task.get_task(session, base_task_id)
        params = base.get_parameters()
        params.update(parameter_override or {})
        self.task = Task.clone(session, base_task_id, parent=parent or base_task_id, project=project)
        if tags:
            self.task.set_tags(sorted(set(self.task.data.get("tags") or []) | set(tags)))
        if parameter_override:
            self.task.update_parameters(parameter_override)
        task_hash = hashlib.md5(json.dumps({"script": self.task.data.get("script"), "hyper_params": params},
                                           sort_keys=True).encode()).hexdigest()
        self.task._set_runtime_properties({"pipeline_job_hash": task_hash})

    def launch(self, queue_name):
        Task.enqueue(self.session, self.task.id, queue_name)


def wait_jobs(session, jobs, poll_seconds):
    """BaseJob.update_status_batch until every job ended; the statuses."""
    while True:
        statuses = Task.tasks_status(session, [j.task.id for j in jobs])
        if all(s in ("stopped", "completed", "failed", "published") for s in statuses.values()):
            return statuses
        time.sleep(poll_seconds)
