//! The `events` table's Arrow columns, appended to straight from a normalized event.
//!
//! This is the ingest hot path: every stored event passes through [`EventColumns::append`].
//! A typed builder per column costs a few pushes per value; the row-at-a-time serializer it
//! replaced (`serde_arrow` over [`EventRow`](idgw_schemas::rows::EventRow)) went through
//! serde's generic machinery for each of the 80 fields, and the owned strings a row needed
//! (`entity_key`, `threat_detections`) are now written into the column buffers directly.
//! `EventRow` stays the reference: a test proves both produce the same batch.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use idgw_schemas::SemanticEvent;
use idgw_schemas::rows::principal;

/// Bytes reserved per row for an identifier-sized string column.
const SHORT_STRING_BYTES: usize = 24;

fn strings(rows: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * SHORT_STRING_BYTES)
}

fn lists(rows: usize) -> ListBuilder<StringBuilder> {
    ListBuilder::with_capacity(StringBuilder::new(), rows)
}

fn timestamps(rows: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC")
}

fn push_all<'a>(list: &mut ListBuilder<StringBuilder>, values: impl IntoIterator<Item = &'a str>) {
    for v in values {
        list.values().append_value(v);
    }
    list.append(true);
}

/// Declares the builders in the table's column order; [`EventColumns::new`] checks that
/// order against the schema, so a column added to one and not the other is an error at
/// the first batch (and in the tests), never a silently shifted column.
macro_rules! event_columns {
    ($($name:ident: $builder:ty = $new:expr),* $(,)?) => {
        /// Builders for one batch of `events` rows.
        pub struct EventColumns {
            schema: SchemaRef,
            rows: usize,
            capacity: usize,
            $($name: $builder,)*
        }

        impl EventColumns {
            const NAMES: &[&str] = &[$(stringify!($name)),*];

            fn with_schema(schema: SchemaRef, capacity: usize) -> Self {
                EventColumns { schema, rows: 0, capacity, $($name: $new(capacity),)* }
            }

            fn arrays(&mut self) -> Vec<ArrayRef> {
                vec![$(Arc::new(self.$name.finish()) as ArrayRef),*]
            }
        }
    };
}

event_columns! {
    event_id: StringBuilder = |n| StringBuilder::with_capacity(n, n * 36),
    event_time: TimestampMillisecondBuilder = timestamps,
    event_type: StringBuilder = strings,
    category: StringBuilder = strings,
    action: StringBuilder = strings,
    severity: StringBuilder = strings,
    display_message: StringBuilder = strings,
    class_uid: Int32Builder = Int32Builder::with_capacity,
    category_uid: Int32Builder = Int32Builder::with_capacity,
    activity_id: Int32Builder = Int32Builder::with_capacity,
    type_uid: Int64Builder = Int64Builder::with_capacity,
    status_id: Int32Builder = Int32Builder::with_capacity,
    entity_key: StringBuilder = strings,
    actor_id: StringBuilder = strings,
    actor_type: StringBuilder = strings,
    actor_login: StringBuilder = strings,
    actor_display_name: StringBuilder = strings,
    target_id: StringBuilder = strings,
    target_type: StringBuilder = strings,
    target_login: StringBuilder = strings,
    target_display_name: StringBuilder = strings,
    user_id: StringBuilder = strings,
    user_login: StringBuilder = strings,
    user_display_name: StringBuilder = strings,
    src_ip: StringBuilder = strings,
    ip_chain: ListBuilder<StringBuilder> = lists,
    user_agent: StringBuilder = |n| StringBuilder::with_capacity(n, n * 128),
    ua_os: StringBuilder = strings,
    ua_browser: StringBuilder = strings,
    client_device: StringBuilder = strings,
    client_zone: StringBuilder = strings,
    client_id: StringBuilder = strings,
    geo_city: StringBuilder = strings,
    geo_state: StringBuilder = strings,
    geo_country: StringBuilder = strings,
    geo_postal_code: StringBuilder = strings,
    geo_lat: Float64Builder = Float64Builder::with_capacity,
    geo_lon: Float64Builder = Float64Builder::with_capacity,
    asn: Int64Builder = Int64Builder::with_capacity,
    as_org: StringBuilder = strings,
    isp: StringBuilder = strings,
    domain: StringBuilder = strings,
    is_proxy: BooleanBuilder = BooleanBuilder::with_capacity,
    anonymizer: BooleanBuilder = BooleanBuilder::with_capacity,
    tunnel_operators: ListBuilder<StringBuilder> = lists,
    dt_hash: StringBuilder = strings,
    device_fingerprint: StringBuilder = strings,
    device_id: StringBuilder = strings,
    device_name: StringBuilder = strings,
    device_os_platform: StringBuilder = strings,
    device_managed: BooleanBuilder = BooleanBuilder::with_capacity,
    device_registered: BooleanBuilder = BooleanBuilder::with_capacity,
    session_id: StringBuilder = strings,
    root_session_id: StringBuilder = strings,
    auth_provider: StringBuilder = strings,
    credential_provider: StringBuilder = strings,
    credential_type: StringBuilder = strings,
    auth_interface: StringBuilder = strings,
    mfa_factor: StringBuilder = strings,
    mfa_factor_intent: StringBuilder = strings,
    push_response: StringBuilder = strings,
    number_challenge_response: StringBuilder = strings,
    request_id: StringBuilder = strings,
    transaction_type: StringBuilder = strings,
    request_uri: StringBuilder = strings,
    api_token_id: StringBuilder = strings,
    outcome_result: StringBuilder = strings,
    outcome_reason: StringBuilder = strings,
    threat_suspected: BooleanBuilder = BooleanBuilder::with_capacity,
    threat_detections: ListBuilder<StringBuilder> = lists,
    threat_max_level: StringBuilder = strings,
    okta_risk_level: StringBuilder = strings,
    okta_risk_previous_level: StringBuilder = strings,
    okta_risk_reasons: ListBuilder<StringBuilder> = lists,
    okta_risk_detection: StringBuilder = strings,
    behaviors_positive: ListBuilder<StringBuilder> = lists,
    warnings: ListBuilder<StringBuilder> = lists,
    // Verbatim events are ~2 KB each; reserving that up front saves the regrowth copies.
    raw: StringBuilder = |n| StringBuilder::with_capacity(n, n * 2048),
}

impl std::fmt::Debug for EventColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventColumns")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl EventColumns {
    /// Builders for `schema` (the `events` schema), reserving room for `rows` rows. Fails
    /// when the schema's columns are not the ones this module writes, in the same order.
    pub fn new(schema: SchemaRef, rows: usize) -> Result<Self, ArrowError> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        if names != Self::NAMES {
            return Err(ArrowError::SchemaError(format!(
                "the events writer's columns {:?} differ from the table's {names:?}",
                Self::NAMES
            )));
        }
        Ok(Self::with_schema(schema, rows))
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one event. `raw` is its verbatim JSON text (the event's own `raw`, when it
    /// carries one, is not read: ingest passes the decoder's text without copying it).
    pub fn append(&mut self, e: &SemanticEvent<'_>, raw: Option<&str>) {
        self.rows += 1;
        self.event_id.append_value(&e.event_id);
        self.event_time.append_value(e.event_time.timestamp_millis());
        self.event_type.append_value(&e.event_type);
        self.category.append_value(e.category.as_str());
        self.action.append_value(&e.action);
        self.severity.append_value(&e.severity);
        self.display_message.append_option(e.display_message.as_deref());
        self.class_uid.append_value(e.ocsf.class_uid);
        self.category_uid.append_value(e.ocsf.category_uid);
        self.activity_id.append_value(e.ocsf.activity_id);
        self.type_uid.append_value(e.ocsf.type_uid);
        self.status_id.append_value(e.ocsf.status_id);
        self.append_entity_key(e);

        let [id, kind, login, name] = principal(e.actor.as_ref());
        self.actor_id.append_option(id);
        self.actor_type.append_option(kind);
        self.actor_login.append_option(login);
        self.actor_display_name.append_option(name);
        let [id, kind, login, name] = principal(e.primary_target.as_ref());
        self.target_id.append_option(id);
        self.target_type.append_option(kind);
        self.target_login.append_option(login);
        self.target_display_name.append_option(name);
        let [id, _, login, name] = principal(e.subject_user.as_ref());
        self.user_id.append_option(id);
        self.user_login.append_option(login);
        self.user_display_name.append_option(name);

        let c = &e.client;
        self.src_ip.append_option(c.ip.as_deref());
        push_all(&mut self.ip_chain, e.network.ip_chain.iter().map(AsRef::as_ref));
        self.user_agent.append_option(c.user_agent.as_deref());
        self.ua_os.append_option(c.os.as_deref());
        self.ua_browser.append_option(c.browser.as_deref());
        self.client_device.append_option(c.device_type.as_deref());
        self.client_zone.append_option(c.zone.as_deref());
        self.client_id.append_option(c.client_id.as_deref());
        let geo = c.geo.as_ref();
        self.geo_city.append_option(geo.and_then(|g| g.city.as_deref()));
        self.geo_state.append_option(geo.and_then(|g| g.state.as_deref()));
        self.geo_country.append_option(geo.and_then(|g| g.country.as_deref()));
        self.geo_postal_code
            .append_option(geo.and_then(|g| g.postal_code.as_deref()));
        self.geo_lat.append_option(geo.and_then(|g| g.lat));
        self.geo_lon.append_option(geo.and_then(|g| g.lon));

        let n = &e.network;
        self.asn.append_option(n.asn);
        self.as_org.append_option(n.as_org.as_deref());
        self.isp.append_option(n.isp.as_deref());
        self.domain.append_option(n.domain.as_deref());
        self.is_proxy.append_option(n.is_proxy);
        self.anonymizer.append_value(n.anonymizer);
        push_all(
            &mut self.tunnel_operators,
            n.tunnels.iter().filter_map(|t| t.operator.as_deref()),
        );

        let d = &e.device;
        self.dt_hash.append_option(d.dt_hash.as_deref());
        self.device_fingerprint.append_option(d.fingerprint.as_deref());
        self.device_id.append_option(d.id.as_deref());
        self.device_name.append_option(d.name.as_deref());
        self.device_os_platform.append_option(d.os_platform.as_deref());
        self.device_managed.append_option(d.managed);
        self.device_registered.append_option(d.registered);

        self.session_id.append_option(e.session.external_session_id.as_deref());
        self.root_session_id.append_option(e.session.root_session_id.as_deref());
        let a = &e.auth;
        self.auth_provider.append_option(a.provider.as_deref());
        self.credential_provider.append_option(a.credential_provider.as_deref());
        self.credential_type.append_option(a.credential_type.as_deref());
        self.auth_interface.append_option(a.interface.as_deref());
        self.mfa_factor.append_option(a.factor.as_deref());
        self.mfa_factor_intent.append_option(a.factor_intent.as_deref());
        self.push_response.append_option(a.push_response.as_deref());
        self.number_challenge_response
            .append_option(a.number_challenge_response.as_deref());
        let r = &e.request;
        self.request_id.append_option(r.request_id.as_deref());
        self.transaction_type.append_option(r.transaction_type.as_deref());
        self.request_uri.append_option(r.request_uri.as_deref());
        self.api_token_id.append_option(r.api_token_id.as_deref());
        self.outcome_result.append_option(e.outcome.result.as_deref());
        self.outcome_reason.append_option(e.outcome.reason.as_deref());

        let s = &e.okta_signals;
        self.threat_suspected.append_option(s.threat_suspected);
        for t in &s.threat_detections {
            let values = self.threat_detections.values();
            // Writing into the value buffer, then closing the value: no String per entry.
            let _ = write!(values, "{}={}", t.name, t.level);
            values.append_value("");
        }
        self.threat_detections.append(true);
        self.threat_max_level.append_option(s.threat_max_level());
        let risk = s.risk.as_ref();
        self.okta_risk_level
            .append_option(risk.and_then(|r| r.level.as_deref()));
        self.okta_risk_previous_level
            .append_option(risk.and_then(|r| r.previous_level.as_deref()));
        push_all(
            &mut self.okta_risk_reasons,
            risk.into_iter().flat_map(|r| r.reasons.iter().map(String::as_str)),
        );
        self.okta_risk_detection
            .append_option(risk.and_then(|r| r.detection_name.as_deref()));
        push_all(&mut self.behaviors_positive, s.positive_behaviors());
        push_all(&mut self.warnings, e.warnings.iter().map(String::as_str));
        self.raw.append_option(raw);
    }

    /// [`SemanticEvent::entity_key`], written into the column without an owned string.
    fn append_entity_key(&mut self, e: &SemanticEvent<'_>) {
        if let Some(id) = e.subject_user.as_ref().and_then(|u| u.id.as_deref()) {
            self.entity_key.append_value(id);
        } else if let Some(ip) = e.client.ip.as_deref() {
            let _ = write!(self.entity_key, "ip:{ip}");
            self.entity_key.append_value("");
        } else {
            self.entity_key.append_null();
        }
    }

    /// The rows appended so far as one batch; the builders start the next one empty.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        // Fresh builders with the full reservation: a finished builder keeps none.
        let next = Self::with_schema(Arc::clone(&self.schema), self.capacity);
        let mut done = std::mem::replace(self, next);
        let arrays = done.arrays();
        RecordBatch::try_new(done.schema, arrays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use idgw_schemas::rows::events_schema;

    #[test]
    fn a_schema_with_other_columns_is_refused() {
        let mut fields: Vec<Field> = events_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.swap(13, 14);
        let err = EventColumns::new(Arc::new(Schema::new(fields)), 8).unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
        let mut fields: Vec<Field> = events_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("extra", DataType::Utf8, true));
        assert!(EventColumns::new(Arc::new(Schema::new(fields)), 8).is_err());
    }
}
