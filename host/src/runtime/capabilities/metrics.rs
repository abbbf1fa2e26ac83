//! `metrics`: counters, gauges and histograms a plugin defines, in the
//! process's plugin registry (`telemetry/plugin_metrics/`).

use crate::runtime::bindings::weir::plugin::metrics;
use crate::runtime::host::HostState;
use crate::telemetry::plugin_metrics::{
    CounterHandle, Definition, GaugeHandle, HistogramHandle, Kind,
};

type Res<T> = wasmtime::Result<T>;

/// Most metric handles one instance may hold (every `define` makes one).
const MAX_METRIC_HANDLES: usize = 1024;

impl HostState {
    fn define_metric<T: Send + 'static>(
        &mut self,
        def: Definition<'_>,
        wrap: impl FnOnce(crate::telemetry::plugin_metrics::Handle) -> T,
    ) -> Res<Result<wasmtime::component::Resource<T>, String>> {
        if self.metric_handles >= MAX_METRIC_HANDLES {
            return Ok(Err(format!(
                "an instance may hold at most {MAX_METRIC_HANDLES} metric handles"
            )));
        }
        match self.caps.metrics.define(&self.plugin, &def) {
            Ok(handle) => {
                self.metric_handles += 1;
                Ok(Ok(self.table.push(wrap(handle))?))
            }
            Err(why) => Ok(Err(why)),
        }
    }

    fn drop_metric<T: 'static>(&mut self, handle: wasmtime::component::Resource<T>) -> Res<()> {
        self.table.delete(handle)?;
        self.metric_handles = self.metric_handles.saturating_sub(1);
        Ok(())
    }
}

impl metrics::Host for HostState {}

impl metrics::HostCounter for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
    ) -> Res<Result<wasmtime::component::Resource<CounterHandle>, String>> {
        let def = Definition {
            name: &name,
            help: &help,
            labels: &labels,
            kind: Kind::Counter,
            buckets: &[],
        };
        self.define_metric(def, CounterHandle)
    }

    fn add(
        &mut self,
        metric: wasmtime::component::Resource<CounterHandle>,
        label_values: Vec<String>,
        value: u64,
    ) -> Res<()> {
        self.table
            .get_mut(&metric)?
            .0
            .add_counter(&label_values, value);
        Ok(())
    }

    fn drop(&mut self, metric: wasmtime::component::Resource<CounterHandle>) -> Res<()> {
        self.drop_metric(metric)
    }
}

impl metrics::HostGauge for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
    ) -> Res<Result<wasmtime::component::Resource<GaugeHandle>, String>> {
        let def = Definition {
            name: &name,
            help: &help,
            labels: &labels,
            kind: Kind::Gauge,
            buckets: &[],
        };
        self.define_metric(def, GaugeHandle)
    }

    fn set(
        &mut self,
        metric: wasmtime::component::Resource<GaugeHandle>,
        label_values: Vec<String>,
        value: f64,
    ) -> Res<()> {
        self.table
            .get_mut(&metric)?
            .0
            .set_gauge(&label_values, value);
        Ok(())
    }

    fn add(
        &mut self,
        metric: wasmtime::component::Resource<GaugeHandle>,
        label_values: Vec<String>,
        delta: f64,
    ) -> Res<()> {
        self.table
            .get_mut(&metric)?
            .0
            .add_gauge(&label_values, delta);
        Ok(())
    }

    fn drop(&mut self, metric: wasmtime::component::Resource<GaugeHandle>) -> Res<()> {
        self.drop_metric(metric)
    }
}

impl metrics::HostHistogram for HostState {
    fn define(
        &mut self,
        name: String,
        help: String,
        labels: Vec<String>,
        buckets: Vec<f64>,
    ) -> Res<Result<wasmtime::component::Resource<HistogramHandle>, String>> {
        let def = Definition {
            name: &name,
            help: &help,
            labels: &labels,
            kind: Kind::Histogram,
            buckets: &buckets,
        };
        self.define_metric(def, HistogramHandle)
    }

    fn observe(
        &mut self,
        metric: wasmtime::component::Resource<HistogramHandle>,
        label_values: Vec<String>,
        value: f64,
    ) -> Res<()> {
        self.table.get_mut(&metric)?.0.observe(&label_values, value);
        Ok(())
    }

    fn drop(&mut self, metric: wasmtime::component::Resource<HistogramHandle>) -> Res<()> {
        self.drop_metric(metric)
    }
}
