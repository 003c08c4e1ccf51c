"""Validates exported alerts as OCSF Detection Findings with an independent implementation
of the schema: the pydantic models of `py-ocsf-models` (PyPI), not our own code.

usage: ocsf_validate.py [--strict] < findings.ndjson

Reads NDJSON on stdin, one finding a line (blank lines are skipped). Each line is validated
as a `DetectionFinding` in pydantic's strict JSON mode (so `"time": "1700000000000"` or
`4.0` for an integer fails, where the lax mode would coerce it), then checked for what the
model does not enforce, on the line as sent rather than on the model's defaults:
class_uid 2004, category_uid 2, type_uid = class_uid * 100 + activity_id, severity_id in
0..6 or 99, metadata.version present and equal to the model's OCSF version, and `time`
(and the finding's start/end/first/last-seen times) an integer epoch in milliseconds.

The models ignore fields they do not define (pydantic's default, extra="ignore"), and they
leave out some of OCSF (e.g. `evidences[].src_endpoint`, `evidences[].actor`): such fields
are listed on stderr as not checked. With --strict they fail the record instead.

Prints one line per invalid record (line number, alert uid when known, the errors) and
exits 1 if any failed (or if stdin held none); otherwise prints `validated N detection findings (OCSF <version>)`
and exits 0. Exits 2 when py_ocsf_models cannot be imported.
"""

import json
import sys

try:
    import pydantic
    from py_ocsf_models import OCSF_VERSION
    from py_ocsf_models.events.findings.detection_finding import DetectionFinding
except ImportError as e:
    print(
        f"ocsf_validate: py_ocsf_models is not importable ({e}); install it with "
        "`pip install py-ocsf-models==0.10.0`",
        file=sys.stderr,
    )
    sys.exit(2)

CLASS_UID = 2004
CATEGORY_UID = 2
SEVERITY_IDS = {0, 1, 2, 3, 4, 5, 6, 99}
# Epoch milliseconds before this (1973-03-03) are taken for seconds sent by mistake.
MIN_EPOCH_MS = 100_000_000_000
PYDANTIC_V2 = int(pydantic.VERSION.split(".")[0]) >= 2


def validate_model(line):
    """The model's errors for one JSON line, and what it validated (None on errors)."""
    try:
        if PYDANTIC_V2:
            return [], DetectionFinding.model_validate_json(line, strict=True)
        return [], DetectionFinding.parse_raw(line)
    except pydantic.ValidationError as e:
        errors = []
        for err in e.errors():
            where = ".".join(str(part) for part in err["loc"])
            errors.append(f"{where}: {err['msg']}")
        return errors, None


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_time(errors, record, path):
    value = record
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        if path == "time":
            errors.append("time: required")
        return
    if not is_int(value):
        errors.append(f"{path}: must be an integer (epoch ms), got {value!r}")
    elif value < MIN_EPOCH_MS:
        errors.append(f"{path}: {value} is not epoch milliseconds (seconds?)")


def check_ocsf(record):
    """What the model does not enforce, on the record as sent."""
    errors = []
    class_uid = record.get("class_uid")
    if class_uid != CLASS_UID or not is_int(class_uid):
        errors.append(f"class_uid: must be {CLASS_UID} (Detection Finding), got {class_uid!r}")
    category_uid = record.get("category_uid")
    if category_uid != CATEGORY_UID or not is_int(category_uid):
        errors.append(f"category_uid: must be {CATEGORY_UID} (Findings), got {category_uid!r}")
    activity_id, type_uid = record.get("activity_id"), record.get("type_uid")
    if is_int(class_uid) and is_int(activity_id) and type_uid != class_uid * 100 + activity_id:
        errors.append(
            f"type_uid: must be class_uid * 100 + activity_id = {class_uid * 100 + activity_id}, got {type_uid!r}"
        )
    severity_id = record.get("severity_id")
    if not is_int(severity_id) or severity_id not in SEVERITY_IDS:
        errors.append(f"severity_id: must be 0..6 or 99, got {severity_id!r}")
    metadata = record.get("metadata")
    version = metadata.get("version") if isinstance(metadata, dict) else None
    if version is None:
        errors.append(f"metadata.version: required (the OCSF version, {OCSF_VERSION})")
    elif version != OCSF_VERSION:
        errors.append(f"metadata.version: {version!r}, but this validator implements OCSF {OCSF_VERSION}")
    for path in (
        "time",
        "start_time",
        "end_time",
        "finding_info.first_seen_time",
        "finding_info.last_seen_time",
        "finding_info.created_time",
    ):
        check_time(errors, record, path)
    return errors


def ignored_fields(sent, kept, path=""):
    """Paths of the fields in the record as sent that the model dropped (it ignores unknown
    fields); list indices are written [] so that one path stands for every element."""
    out = []
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                out.append(where)
            else:
                out.extend(ignored_fields(value, kept[key], where))
    elif isinstance(sent, list) and isinstance(kept, list):
        for a, b in zip(sent, kept):
            out.extend(ignored_fields(a, b, f"{path}[]"))
    return out


def dump(model):
    if PYDANTIC_V2:
        return model.model_dump(mode="json", exclude_unset=True)
    return json.loads(model.json(exclude_unset=True))


def main(argv):
    strict = "--strict" in argv[1:]
    unknown = [a for a in argv[1:] if a != "--strict"]
    if unknown:
        print(f"usage: ocsf_validate.py [--strict] < findings.ndjson (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    valid = invalid = 0
    unchecked = set()
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        uid = None
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            errors = [f"not JSON: {e}"]
        else:
            if not isinstance(record, dict):
                errors = [f"not a JSON object: {type(record).__name__}"]
            else:
                info = record.get("finding_info")
                uid = info.get("uid") if isinstance(info, dict) else None
                errors, model = validate_model(line)
                errors += check_ocsf(record)
                if model is not None:
                    dropped = ignored_fields(record, dump(model))
                    if strict:
                        errors += [f"{where}: not in the model (--strict)" for where in dropped]
                    unchecked.update(dropped)
        if errors:
            invalid += 1
            print(f"line {number}{f' ({uid})' if uid else ''}: invalid: " + "; ".join(errors))
        else:
            valid += 1
    if unchecked and not strict:
        print(
            "ocsf_validate: not in the model, so not checked: " + ", ".join(sorted(unchecked)),
            file=sys.stderr,
        )
    if not valid + invalid:
        print("ocsf_validate: no detection findings on stdin")
        return 1
    if invalid:
        print(f"{invalid} of {valid + invalid} detection findings invalid (OCSF {OCSF_VERSION})")
        return 1
    print(f"validated {valid} detection findings (OCSF {OCSF_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
