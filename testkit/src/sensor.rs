//! What Argo Events does with a rendered Sensor trigger once its
//! dependency fired: the Workflow it submits, its parameters taken from the
//! event. Shared by the tests that check the rendered Sensor against the
//! simulator and against a real API server. Parameters are resolved as
//! Argo Events resolves them: a `dataTemplate` first (aphex renders one
//! form only: `{{ if regexMatch "RE" .Input.PATH }}{{ .Input.PATH }}{{ end }}`,
//! with sprig's unanchored `regexMatch`), then a `dataKey` (a gjson path),
//! then the default `value`; `dest` is an sjson path (`\.` escapes a dot).

use serde_json::Value;

/// The Workflow `trigger` (an element of a Sensor's `spec.triggers`)
/// submits for `event` (`{"headers": ..., "body": ...}`).
pub fn submitted_workflow(trigger: &Value, event: &Value) -> Value {
    let submit = &trigger["template"]["argoWorkflow"];
    let mut workflow = submit["source"]["resource"].clone();
    for p in submit["parameters"].as_array().expect("a trigger's parameters") {
        let src = &p["src"];
        let value = src["dataTemplate"]
            .as_str()
            .and_then(|t| template_value(t, event))
            .or_else(|| {
                src["dataKey"]
                    .as_str()
                    .and_then(|k| lookup(event, k))
                    .map(gjson_string)
            })
            .unwrap_or_else(|| src["value"].as_str().expect("a default value").to_owned());
        let dest = p["dest"].as_str().expect("a destination");
        *sjson_target(&mut workflow, dest) = Value::String(value);
    }
    workflow
}

/// What the one template form aphex renders gives for `event`, `None`
/// when it renders nothing or fails (Argo Events then falls back).
fn template_value(template: &str, event: &Value) -> Option<String> {
    let form = regex::Regex::new(
        r#"^\{\{ if regexMatch "([^"]*)" \.Input\.([A-Za-z0-9_.]+) \}\}\{\{ \.Input\.([A-Za-z0-9_.]+) \}\}\{\{ end \}\}$"#,
    )
    .unwrap();
    let caps = form
        .captures(template)
        .unwrap_or_else(|| panic!("a dataTemplate this emulation does not know: {template}"));
    assert_eq!(&caps[2], &caps[3], "the template prints the value it checks");
    // regexMatch takes a string: anything else fails the template.
    let value = lookup(event, &caps[2])?.as_str()?;
    let re = regex::Regex::new(&caps[1]).expect("the template's regex compiles");
    re.is_match(value).then(|| value.to_owned())
}

/// A simple gjson path (keys and indexes).
fn lookup<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(event, |v, key| match v {
        Value::Object(o) => o.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// gjson's `String()`: strings as they are, null as empty, the rest as JSON.
fn gjson_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The value at sjson path `dest` in `object`, made when missing; the path
/// must lead through objects and existing array elements.
fn sjson_target<'a>(object: &'a mut Value, dest: &str) -> &'a mut Value {
    let mut keys = Vec::new();
    let mut key = String::new();
    let mut chars = dest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => key.push(chars.next().expect("an escaped character")),
            '.' => keys.push(std::mem::take(&mut key)),
            c => key.push(c),
        }
    }
    keys.push(key);
    keys.iter().fold(object, |v, k| match v {
        Value::Array(a) => {
            let i: usize = k
                .parse()
                .unwrap_or_else(|_| panic!("{dest}: `{k}` indexes an array"));
            a.get_mut(i).unwrap_or_else(|| panic!("{dest}: no element {i}"))
        }
        v => {
            assert!(v.is_object(), "{dest}: `{k}` is not in an object");
            &mut v[k.as_str()]
        }
    })
}
