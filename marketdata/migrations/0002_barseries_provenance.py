"""BarSeries.provenance: the ranges each write added or replaced (marketdata.store).

Series stored before it existed get one range covering what they hold, from their recorded
source, marked `before_provenance` (which bars came from where was not kept then)."""

from django.db import migrations, models


def backfill(apps, schema_editor):
    BarSeries = apps.get_model("marketdata", "BarSeries")
    for series in BarSeries.objects.filter(row_count__gt=0).iterator():
        if series.provenance or series.first_timestamp is None:
            continue
        series.provenance = [
            {
                "source": series.source,
                "start": series.first_timestamp.isoformat(),
                "end": series.last_timestamp.isoformat(),
                "bars": series.row_count,
                "at": series.updated_at.isoformat(),
                "before_provenance": True,
            }
        ]
        series.save(update_fields=["provenance"])


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="barseries",
            name="provenance",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
