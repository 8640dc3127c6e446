# bench/chart.gp - the chart of a bench/run.sh run: drain throughput (left)
# and commit->start latency (right), side by side, from the chart.dat that
# bench/summarize.mjs writes.
#   gnuplot -e "datafile='chart.dat'; outfile='chart.png'; n=50000; subtitle='…'" bench/chart.gp
# chart.dat: index 0 "label" median min max (jobs/s);
#            index 1 "label" p50 p50min p50max p99 p99min p99max (ms).
# Bars are medians over the repetitions, whiskers min-max.
if (!exists("datafile")) datafile = 'chart.dat'
if (!exists("outfile")) outfile = 'chart.png'
if (!exists("subtitle")) subtitle = ''
if (!exists("n")) n = 50000

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size 1500,620 font "DejaVu Sans,11" noenhanced
} else {
	set terminal png size 1500,620 font "DejaVuSans,10" noenhanced
}
set output outfile

lote(s) = strstrt(s, "lote") == 1
set style fill solid 0.85 border -1
set boxwidth 0.6
set grid ytics lc rgb "#dddddd"
set border 3
set tics nomirror
set xtics scale 0 offset 0,-0.3
set key top left
set bmargin 5

set multiplot layout 1,2 title "lote beside its peers, one run, same PostgreSQL 15" . (subtitle ne '' ? "\n" . subtitle : '')

# ---- left: drain throughput
set title sprintf("Drain %d queued no-op jobs: jobs/s (higher is better)", n)
set yrange [0:*]
set format y "%.0fk"
unset key
set xrange [-0.6:*]
plot datafile index 0 using 0:($2/1000):(lote(strcol(1)) ? 0x2a6fb0 : 0xb0b0b0):xtic(1) with boxes lc rgb variable, \
     '' index 0 using 0:($3/1000):(0):(($4-$3)/1000) with vectors heads size screen 0.006,90 lc rgb "#333333" lw 1.2, \
     '' index 0 using 0:($4/1000):(sprintf("%.1fk", $2/1000)) with labels offset 0,0.8 font ",10"

# ---- right: latency, p50 and p99 per engine
# log scale: sub-millisecond medians and tens of ms under a backlog in one panel
set title "Commit → handler start at 20/s: ms, p50 and p99, log scale (lower is better)"
set logscale y
set yrange [0.1:*]
set format y "%g"
stats datafile index 1 using 2 nooutput
set xrange [-0.6:STATS_records - 0.4]
set key top left
set style data histograms
set style histogram errorbars gap 1.5 lw 1.2
set boxwidth 0.9 relative
plot datafile index 1 using 2:3:4:xtic(1) title "p50" lc rgb "#6fa8dc", \
     '' index 1 using 5:6:7 title "p99" lc rgb "#1f4e79"

unset multiplot
