# Replays the requests of the ClearML Python SDK (clearml 2.1.x), for tests:
# the SDK cannot be installed where our tests run. Every method here sends
# what the SDK's method of the same name sends, in its order, with its
# bodies, as read from its source (clearml/backend_interface/task/task.py,
# clearml/backend_interface/util.py, clearml/task.py, clearml/binding/
# artifacts.py). Only the standard library is used. Configuration comes from
# the environment, as the SDK's: CLEARML_API_HOST, CLEARML_FILES_HOST,
# CLEARML_API_ACCESS_KEY, CLEARML_API_SECRET_KEY, CLEARML_TASK_ID.
import base64
import getpass
import hashlib
import io
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from datetime import datetime, timezone

API_VERSION = "2.23"
CLIENT = "clearml-2.1.7"
SINGLE_VALUE_ITERATION = -(2 ** 31)


class APIError(Exception):
    def __init__(self, endpoint, code, subcode, msg):
        super().__init__("%s: %s/%s %s" % (endpoint, code, subcode, msg))
        self.endpoint, self.code, self.subcode = endpoint, code, subcode


def _drop_none(v):
    """The SDK's request objects leave unset (None) fields out, at any depth."""
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_none(x) for x in v]
    return v


def exact_match_regex(name):
    return "^%s$" % re.escape(name or "")


class Session:
    """backend_api.Session: login with the key pair, then Bearer calls."""

    def __init__(self):
        self.host = os.environ["CLEARML_API_HOST"].rstrip("/")
        self.files = (os.environ.get("CLEARML_FILES_HOST") or self.host + "/files").rstrip("/")
        self.key = os.environ["CLEARML_API_ACCESS_KEY"]
        self.secret = os.environ["CLEARML_API_SECRET_KEY"]
        self.worker = socket.gethostname()
        self.token = None
        self.login()

    def _http(self, method, url, data=None, headers=None):
        req = urllib.request.Request(url, data=data, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def login(self):
        auth = base64.b64encode(("%s:%s" % (self.key, self.secret)).encode()).decode()
        status, raw = self._http("GET", self.host + "/auth.login", headers={
            "Authorization": "Basic " + auth, "X-ClearML-Worker": self.worker, "X-ClearML-Client": CLIENT})
        if status != 200:
            raise APIError("auth.login", status, 0, raw[:200])
        self.token = json.loads(raw)["data"]["token"]

    def _headers(self, content_type="application/json"):
        return {"Authorization": "Bearer " + self.token, "X-ClearML-Worker": self.worker,
                "X-ClearML-Client": CLIENT, "Content-Type": content_type}

    def send(self, endpoint, body=None, version=API_VERSION, raise_on_errors=True):
        """One call, as the SDK's generated requests: GET with a JSON body
        without the unset (None) fields, plus "method": "get"."""
        body = _drop_none(body or {})
        body["method"] = "get"
        status, raw = self._http("GET", "%s/v%s/%s" % (self.host, version, endpoint),
                                 json.dumps(body).encode(), self._headers())
        env = json.loads(raw)
        meta = env["meta"]
        if meta["result_code"] != 200:
            if raise_on_errors:
                raise APIError(endpoint, meta["result_code"], meta["result_subcode"], meta["result_msg"])
            return None
        return env["data"]

    def add_events(self, events):
        """events.add_batch: POST, one JSON event per line."""
        data = "\n".join(json.dumps(e) for e in events).encode()
        status, raw = self._http("POST", "%s/v%s/events.add_batch" % (self.host, API_VERSION), data,
                                 self._headers("application/json-lines"))
        res = json.loads(raw)["data"]
        if status != 200 or res.get("errors"):
            raise APIError("events.add_batch", status, 0, raw[:300])
        return res

    def upload(self, path, data):
        """The SDK's HTTP storage driver: a multipart POST to the files server,
        one file field named with the object path."""
        boundary = uuid.uuid4().hex
        name = "/" + path
        body = b"".join([
            ("--%s\r\n" % boundary).encode(),
            ('Content-Disposition: form-data; name="%s"; filename="%s"\r\n' % (name, name)).encode(),
            b"Content-Type: application/octet-stream\r\n\r\n", data, b"\r\n",
            ("--%s--\r\n" % boundary).encode()])
        status, raw = self._http("POST", self.files, body, {
            "Authorization": "Bearer " + self.token, "Content-Type": "multipart/form-data; boundary=" + boundary})
        if status != 200 or json.loads(raw) != [path]:
            raise APIError("files upload " + path, status, 0, raw[:200])
        return self.files + "/" + "/".join(urllib.parse.quote(p) for p in path.split("/"))

    def delete_file(self, url):
        """StorageHelper.delete on the files server: DELETE with the token."""
        status, raw = self._http("DELETE", url, headers={"Authorization": "Bearer " + self.token})
        if status != 200:
            raise APIError("files delete " + url, status, 0, raw[:200])

    def download(self, url):
        status, raw = self._http("GET", url, headers={"Authorization": "Bearer " + self.token})
        if status != 200:
            raise APIError("files download " + url, status, 0, raw[:200])
        return raw


def get_or_create_project(session, project_name, description=None, system_tags=None, project_id=None):
    """backend_interface.util._get_or_create_project."""
    project_system_tags = []
    if not project_id:
        res = session.send("projects.get_all", {"name": exact_match_regex(project_name),
                                                "only_fields": ["id", "system_tags"] if system_tags else ["id"],
                                                "search_hidden": True})
        if res["projects"]:
            project_id = res["projects"][0]["id"]
            if system_tags:
                project_system_tags = res["projects"][0].get("system_tags") or []
    if project_id and system_tags and (not project_system_tags or not set(system_tags).issubset(project_system_tags)):
        session.send("projects.update", {"project": project_id,
                                         "system_tags": sorted(set(project_system_tags + system_tags))})
    if project_id:
        return project_id
    return session.send("projects.create", {"name": project_name, "description": description or "",
                                            "system_tags": system_tags})["id"]


def get_queue_id(session, queue):
    """backend_interface.util.get_queue_id: an id, else a name."""
    res = session.send("queues.get_by_id", {"queue": queue}, raise_on_errors=False)
    if res and res.get("queue"):
        return queue
    res = session.send("queues.get_all", {"name": exact_match_regex(queue), "only_fields": ["id"]})
    return res["queues"][0]["id"] if res["queues"] else None


def running_remotely():
    return bool(os.environ.get("CLEARML_TASK_ID"))


class Task:
    """The SDK's Task (backend_interface.task.Task and clearml.Task)."""
    _main = None

    def __init__(self, session, task_id):
        self.session, self.id = session, task_id
        self.data = None
        self.reload()

    # -- creation and lookup --------------------------------------------
    @classmethod
    def init(cls, session, project_name, task_name, task_type="training"):
        """Task.init: under an agent the task is CLEARML_TASK_ID; otherwise a
        new one, started, with this script as its code (spec 6.1)."""
        if running_remotely():
            task = cls(session, os.environ["CLEARML_TASK_ID"])
        else:
            task = cls._auto_generate(session, project_name, task_name, task_type)
            session.send("tasks.started", {"task": task.id, "force": False})
            task.reload()
            task.get_project_name()
            source = open(sys.argv[0]).read()
            task.reload()
            task._edit(script={"binary": "python%d.%d" % sys.version_info[:2], "repository": "", "branch": "",
                               "version_num": "", "entry_point": os.path.basename(sys.argv[0]),
                               "working_dir": ".", "diff": source, "requirements": {}})
            session.send("tasks.set_requirements", {"task": task.id, "requirements": {"pip": ""}})
        Task._main = task
        return task

    @classmethod
    def create(cls, session, project_name, task_name, task_type="training"):
        """Task.create with no code: a new draft task (Task._auto_generate)."""
        return cls._auto_generate(session, project_name, task_name, task_type)

    @classmethod
    def _auto_generate(cls, session, project_name, task_name, task_type):
        project_id = get_or_create_project(session, project_name) if project_name else None
        created = "Auto-generated at %s UTC by %s@%s" % (
            datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), getpass.getuser(), socket.gethostname())
        res = session.send("tasks.create", {"name": task_name, "type": task_type, "comment": created,
                                            "project": project_id,
                                            "system_tags": [] if running_remotely() else ["development"]})
        return cls(session, res["id"])

    @classmethod
    def get_task(cls, session, task_id):
        return cls(session, task_id)

    @classmethod
    def current_task(cls):
        return Task._main

    def reload(self):
        self.data = self.session.send("tasks.get_by_id", {"task": self.id})["task"]
        return self.data

    @classmethod
    def query_tasks(cls, session, task_ids=None, project_name=None, task_name=None, fetch_only_first_page=False,
                    exact_match_regex_flag=True, **kwargs):
        """Task._query_tasks: project names to ids, then paged tasks.get_all."""
        project_ids = []
        for name in project_name or []:
            res = session.send("projects.get_all", {
                "name": exact_match_regex(name) if exact_match_regex_flag else name,
                "search_hidden": kwargs.get("search_hidden", False)})
            project_ids.extend(p["id"] for p in res["projects"])
        if project_name and not project_ids:
            return []
        only_fields = sorted(set(kwargs.pop("only_fields", [])) | {"id", "name", "last_update", "system_tags"})
        out, page = [], -1
        while True:
            page += 1
            req = dict(id=task_ids, project=project_ids or kwargs.pop("project", None),
                       name=task_name or kwargs.pop("name", None), only_fields=only_fields, page=page, page_size=500)
            req.update(kwargs)
            tasks = session.send("tasks.get_all", req)["tasks"]
            out.extend(tasks)
            if fetch_only_first_page or len(tasks) < 500:
                return out

    @classmethod
    def get_tasks(cls, session, task_filter):
        return cls.query_tasks(session, **task_filter)

    @classmethod
    def clone(cls, session, source_task, name=None, parent=None, project=None):
        """Task.clone: tasks.clone (API >= 2.9)."""
        res = session.send("tasks.clone", {"task": source_task, "new_task_name": name, "new_task_parent": parent,
                                           "new_task_project": project})
        return cls(session, res["id"])

    @classmethod
    def enqueue(cls, session, task_id, queue_name):
        queue_id = get_queue_id(session, queue_name)
        if not queue_id:
            raise ValueError("queue %s not found" % queue_name)
        return session.send("tasks.enqueue", {"task": task_id, "queue": queue_id, "verify_watched_queue": True})

    # -- status -----------------------------------------------------------
    @classmethod
    def tasks_status(cls, session, ids):
        """Task._get_tasks_status: one call for several tasks."""
        res = session.send("tasks.get_all", {"id": ids, "only_fields": ["status", "status_message", "id"]})
        return {t["id"]: t["status"] for t in res["tasks"]}

    def get_status(self):
        status = self.tasks_status(self.session, [self.id])[self.id]
        self.data["status"] = status
        return status

    def mark_started(self, force=False):
        return self.session.send("tasks.started", {"task": self.id, "force": force})

    def mark_completed(self):
        publish = bool((self.data.get("runtime") or {}).get("_publish_on_complete"))
        return self.session.send("tasks.completed", {"task": self.id, "status_reason": "completed",
                                                     "force": False, "publish": publish})

    def publish(self):
        if self.get_status() not in ("stopped", "completed"):
            raise ValueError("Can't publish, Task is not stopped")
        return self.session.send("tasks.publish", {"task": self.id})

    def execute_remotely(self, queue_name):
        """Task.execute_remotely(clone=False): reset and enqueue this task,
        then end the local process."""
        self.session.send("tasks.reset", {"task": self.id, "force": True})
        Task.enqueue(self.session, self.id, queue_name)
        sys.exit(0)

    # -- editing ----------------------------------------------------------
    def _edit(self, **kwargs):
        """Task._edit: only a draft or running task, except for a few fields."""
        if self.data["status"] not in ("created", "in_progress") and not all(
                k in ("name", "project", "comment", "tags", "system_tags", "runtime") for k in kwargs):
            raise ValueError("Task object can only be updated if created or in_progress [status=%s fields=%s]"
                             % (self.data["status"], list(kwargs)))
        body = dict(task=self.id, force=True)
        body.update(kwargs)
        return self.session.send("tasks.edit", body)

    def get_project_name(self):
        if not self.data.get("project"):
            return None
        return self.session.send("projects.get_by_id", {"project": self.data["project"]})["project"]["name"]

    def set_system_tags(self, tags):
        self.data["system_tags"] = sorted(set(tags))
        self._edit(system_tags=self.data["system_tags"])

    def set_tags(self, tags):
        self.data["tags"] = list(tags)
        self._edit(tags=self.data["tags"])

    def set_parent(self, parent):
        self.data["parent"] = parent
        self._edit(parent=parent)

    def set_comment(self, comment):
        self.data["comment"] = comment
        self._edit(comment=comment)

    def set_output_uri(self, uri):
        """The output_uri setter: output.destination through tasks.edit."""
        self.data["output"]["destination"] = uri
        self._edit(output_dest=uri)

    def move_to_project(self, new_project_name, system_tags=None):
        project_id = get_or_create_project(self.session, new_project_name, system_tags=system_tags)
        self.data["project"] = project_id
        self._edit(project=project_id)

    def _set_runtime_properties(self, props):
        self.reload()
        runtime = dict(self.data.get("runtime") or {})
        runtime.update(props)
        self._edit(runtime=runtime)

    def _get_runtime_properties(self):
        return dict(self.data.get("runtime") or {})

    def set_user_properties(self, **props):
        self.session.send("tasks.edit_hyper_params", {"task": self.id, "replace_hyperparams": "none", "force": True,
                                                      "hyperparams": [{"section": "properties", "name": k,
                                                                       "value": str(v), "type": type(v).__name__}
                                                                      for k, v in props.items()]})

    def _set_configuration(self, name, config_text, config_type=None, description=None):
        self.reload()
        configuration = dict(self.data.get("configuration") or {})
        configuration[name] = {"name": name, "value": config_text, "type": config_type, "description": description}
        self._edit(configuration=configuration)

    def get_configuration_object(self, name):
        item = (self.data.get("configuration") or {}).get(name)
        return item["value"] if item else None

    def get_parameters(self):
        """Flat {section/name: value} (backwards_compatibility=False)."""
        return {"%s/%s" % (section, name): p.get("value", "")
                for section, params in (self.data.get("hyperparams") or {}).items() for name, p in params.items()}

    def update_parameters(self, params):
        """Task._set_parameters(__update=True): reload, merge, one tasks.edit."""
        self.reload()
        org = self.data.get("hyperparams") or {}
        merged = self.get_parameters()
        merged.update({k: v for k, v in params.items()})
        hyperparams = {}
        for k, v in merged.items():
            section, name = k.split("/", 1) if "/" in k else ("General", k)
            old = org.get(section, {}).get(name) or {}
            hyperparams.setdefault(section, {})[name] = {
                "section": section, "name": name, "value": "" if v is None else str(v),
                "type": old.get("type") or (type(v).__name__ if v is not None else None),
                "description": old.get("description") or ""}
        self._edit(hyperparams=hyperparams)
        self.data["hyperparams"] = hyperparams

    # -- artifacts ----------------------------------------------------------
    def _output_prefix(self, extra):
        """Task._get_output_destination_suffix: <project>/<task name>.<id>/<extra>."""
        return "/".join([self.get_project_name() or "unknown", "%s.%s" % (self.data["name"], self.id), extra])

    def upload_artifact(self, name, artifact_object, preview=None, metadata=None):
        """Artifacts.upload_artifact: a dict as JSON, a path as the file."""
        if isinstance(artifact_object, dict):
            data, filename, kind = json.dumps(artifact_object, sort_keys=True, indent=2).encode(), name + ".json", "JSON"
            content_type = "application/json"
            preview = preview or json.dumps(artifact_object)[:65536]
        else:
            data, filename, kind = open(artifact_object, "rb").read(), os.path.basename(artifact_object), "custom"
            content_type = "application/zip" if filename.endswith(".zip") else "application/octet-stream"
        uri = self.session.upload("%s/%s/%s" % (self._output_prefix("artifacts"), name, filename), data)
        artifact = {"key": name, "type": kind, "mode": "output", "uri": uri,
                    "hash": hashlib.sha256(data).hexdigest(), "content_size": len(data),
                    "timestamp": int(time.time()), "type_data": {"preview": preview or "", "content_type": content_type},
                    "display_data": [[str(k), str(v)] for k, v in (metadata or {}).items()]}
        res = self.session.send("tasks.add_or_update_artifacts", {"task": self.id, "artifacts": [artifact],
                                                                 "force": True})
        if not res.get("updated"):
            raise ValueError("artifact %s not registered: %s" % (name, res))
        self.reload()
        return uri

    @property
    def artifacts(self):
        return {a["key"]: a for a in self.data["execution"]["artifacts"]}

    # -- reporting ----------------------------------------------------------
    def _event(self, kind, **fields):
        ev = {"timestamp": int(time.time() * 1000), "type": kind, "task": self.id}
        ev.update(fields)
        return ev

    def report_scalar(self, title, series, value, iteration):
        self.session.add_events([self._event("training_stats_scalar", metric=title, variant=series,
                                             value=value, iter=iteration)])

    def report_single_value(self, name, value):
        self.report_scalar("Summary", name, value, SINGLE_VALUE_ITERATION)

    def report_text(self, msg):
        self.session.add_events([self._event("log", level="info", msg=msg, worker=self.session.worker)])

    def report_plot(self, title, series, figure, iteration=0):
        self.session.add_events([self._event("plot", metric=title, variant=series, iter=iteration,
                                             plot_str=json.dumps(figure))])

    def get_last_scalar_metrics(self):
        """{title: {series: {last, min, max}}} from last_metrics."""
        self.reload()
        out = {}
        for variants in (self.data.get("last_metrics") or {}).values():
            for m in variants.values():
                out.setdefault(m["metric"], {})[m["variant"]] = {
                    "last": m.get("value"), "min": m.get("min_value"), "max": m.get("max_value")}
        return out

    def get_reported_single_values(self):
        res = self.session.send("events.get_task_single_value_metrics", {"tasks": [self.id]})
        if not res.get("tasks"):
            return {}
        return {v["variant"]: v["value"] for v in res["tasks"][0].get("values", [])}

    def get_reported_scalars(self):
        return self.session.send("events.scalar_metrics_iter_histogram", {"task": self.id, "key": "iter"})
