"""The entry script of the Spark job, for ``spark-submit`` (``weanalysis spark job-path``).

    spark-submit --master yarn ... "$(weanalysis spark job-path)" \
        --appid wx... --visits 'hdfs:///lake/visits/*.parquet' --end 20261129 --out ...

takes the options of ``weanalysis spark portraits`` (without ``--master``: spark-submit's own).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ["WEANALYSIS_SPARK_SUBMIT"] = "1"
    from weanalysis.cli.spark_cmd import portraits

    portraits.main(args=sys.argv[1:], prog_name="weanalysis-spark-job")


if __name__ == "__main__":
    main()
