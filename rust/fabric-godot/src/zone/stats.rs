//! Statistics of a zone for scripts (`get_stats()`) and for logs (`FABRIC_ZONE_STATS` lines).

use godot::prelude::*;

use super::FabricZone;
use super::tick_profile::Phase;

#[godot_api(secondary)]
impl FabricZone {
    /// Statistics: `tick`, `owned`, `staging`, `incoming`, `arriving`, `held_id_sum`,
    /// `tick_p50_msec` / `tick_p99_msec` / `tick_max_msec` (whole tick over the last minute),
    /// `ticks_measured`, `overruns` (ticks longer than a step), `dropped_ticks` (skipped by
    /// bounded catch-up), `migrations_in`, `migrations_out`, `migrations_in_per_sec`,
    /// `migrations_out_per_sec` (last full second), `rollbacks`, `handoff_p50_msec` /
    /// `handoff_p99_msec` (intent sent to acceptance seen), `ghosts`, `bad_packets`,
    /// `refused_sends`, `tick_cpu_p50_msec` / `tick_cpu_p99_msec` / `tick_cpu_max_msec` (the
    /// tick thread's CPU time per tick: far below the wall time means the tick waited for a
    /// core), `phases`: a dictionary from phase name (`drain`, `core`, `rows`, `send`,
    /// `observe`, `journal`, `replicate`) to `{p50_msec, p99_msec, cpu_p50_msec,
    /// cpu_p99_msec}`, `pump_p99_msec` / `pump_cpu_p99_msec` (pumps between ticks), and
    /// `links`: an array of dictionaries `{zone, rtt_msec, bytes_in, bytes_out, refused}`, one
    /// per link up. Empty when not running.
    #[func]
    pub fn get_stats(&mut self) -> VarDictionary {
        let mut d = VarDictionary::new();
        let Some(rt) = self.runtime.as_mut() else {
            return d;
        };
        let ts = rt.tick_summary();
        let hs = rt.handoff_summary();
        let (c, t, (r_in, r_out)) = (rt.counts(), rt.totals(), rt.rates());
        let ms = |ns: u64| ns as f64 / 1e6;
        let i = |v: u64| v as i64;
        d.set("tick", i(rt.zone().current_tick()));
        d.set("owned", i(c.owned));
        d.set("staging", i(c.staging));
        d.set("incoming", i(c.incoming));
        d.set("arriving", i(c.arriving));
        d.set("held_id_sum", i(c.held_id_sum));
        d.set("tick_p50_msec", ms(ts.p50_ns));
        d.set("tick_p99_msec", ms(ts.p99_ns));
        d.set("tick_max_msec", ms(ts.max_ns));
        d.set("ticks_measured", ts.count as i64);
        d.set("overruns", i(t.overruns));
        d.set("dropped_ticks", i(rt.pacer().dropped_total()));
        d.set("migrations_in", i(t.migrations_in));
        d.set("migrations_out", i(t.migrations_out));
        d.set("migrations_in_per_sec", r_in);
        d.set("migrations_out_per_sec", r_out);
        d.set("rollbacks", i(t.rollbacks));
        d.set("handoff_p50_msec", ms(hs.p50_ns));
        d.set("handoff_p99_msec", ms(hs.p99_ns));
        d.set("ghosts", rt.ghosts().len() as i64);
        d.set("bad_packets", i(rt.zone().stats().bad_packets));
        d.set("refused_sends", i(t.refused_sends));
        let ps = rt.profile_summary();
        d.set("tick_cpu_p50_msec", ms(ps.tick.cpu.p50_ns));
        d.set("tick_cpu_p99_msec", ms(ps.tick.cpu.p99_ns));
        d.set("tick_cpu_max_msec", ms(ps.tick.cpu.max_ns));
        let mut phases = VarDictionary::new();
        for (p, s) in Phase::ALL.iter().zip(ps.phases.iter()) {
            let mut pd = VarDictionary::new();
            pd.set("p50_msec", ms(s.wall.p50_ns));
            pd.set("p99_msec", ms(s.wall.p99_ns));
            pd.set("cpu_p50_msec", ms(s.cpu.p50_ns));
            pd.set("cpu_p99_msec", ms(s.cpu.p99_ns));
            phases.set(p.name(), &pd.to_variant());
        }
        d.set("phases", &phases.to_variant());
        d.set("pump_p99_msec", ms(ps.pump.wall.p99_ns));
        d.set("pump_cpu_p99_msec", ms(ps.pump.cpu.p99_ns));
        let mut links = VarArray::new();
        for l in rt.links() {
            let mut ld = VarDictionary::new();
            ld.set("zone", i64::from(l.zone));
            ld.set("rtt_msec", l.rtt_ms);
            ld.set("bytes_in", i(l.bytes_in));
            ld.set("bytes_out", i(l.bytes_out));
            ld.set("refused", i(l.refused));
            links.push(&ld.to_variant());
        }
        d.set("links", &links.to_variant());
        d
    }
}

impl FabricZone {
    /// The `FABRIC_ZONE_STATS` line.
    pub(super) fn stats_line(&mut self) -> String {
        let zone = self.zone_id;
        let players = self.players.stats_fields()
            + &self.follow.stats_fields()
            + &self.unclaimed.stats_fields();
        let Some(rt) = self.runtime.as_mut() else {
            return format!("FABRIC_ZONE_STATS zone={zone} running=false");
        };
        let ps = rt.profile_summary();
        let ts = ps.tick.wall;
        let hs = rt.handoff_summary();
        let (c, t, (r_in, r_out)) = (rt.counts(), rt.totals(), rt.rates());
        let ms = |ns: u64| ns as f64 / 1e6;
        let mut link_bytes = String::new();
        for l in rt.links() {
            link_bytes += &format!(
                " link{}_bytes_in={} link{}_bytes_out={} link{}_refused={}",
                l.zone, l.bytes_in, l.zone, l.bytes_out, l.zone, l.refused
            );
        }
        let links = rt.links().len();
        let mut phases = String::new();
        for (p, s) in Phase::ALL.iter().zip(ps.phases.iter()) {
            phases += &format!(
                " {}_p99_ms={:.3} {}_cpu_p99_ms={:.3}",
                p.name(),
                ms(s.wall.p99_ns),
                p.name(),
                ms(s.cpu.p99_ns)
            );
        }
        format!(
            "FABRIC_ZONE_STATS zone={zone} tick={} hlc={} owned={} staging={} incoming={} arriving={} \
             tick_p50_ms={:.3} tick_p99_ms={:.3} tick_max_ms={:.3} ticks_measured={} overruns={} \
             dropped_ticks={} migrations_in={} migrations_out={} migrations_in_per_s={r_in:.1} \
             migrations_out_per_s={r_out:.1} handoff_p50_ms={:.1} handoff_p99_ms={:.1} links={links} \
             ghosts={} tick_cpu_p50_ms={:.3} tick_cpu_p99_ms={:.3} tick_cpu_max_ms={:.3}{phases}{link_bytes}{players}",
            rt.zone().current_tick(),
            rt.zone().clock().now().to_u64(),
            c.owned,
            c.staging,
            c.incoming,
            c.arriving,
            ms(ts.p50_ns),
            ms(ts.p99_ns),
            ms(ts.max_ns),
            ts.count,
            t.overruns,
            rt.pacer().dropped_total(),
            t.migrations_in,
            t.migrations_out,
            ms(hs.p50_ns),
            ms(hs.p99_ns),
            rt.ghosts().len(),
            ms(ps.tick.cpu.p50_ns),
            ms(ps.tick.cpu.p99_ns),
            ms(ps.tick.cpu.max_ns),
        )
    }
}
