"""vipwatch, the application floor: the crawl (crawl/), Serve (serve/), evaluation, training, benchmarks (bench/) and enrolment, built on operators/, index/ and core/."""
