use super::table::{parse, Table};
use super::*;

fn tax(ids: &[&str]) -> Vec<ClassDef> {
    ids.iter()
        .map(|i| ClassDef {
            id: i.to_string(),
            en: i.to_string(),
        })
        .collect()
}

/// A store with `n` crops whose first class's probability walks 0.1..0.9.
fn store(n: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::new(dir.path().join("crops"), dir.path().join("teach"));
    std::fs::create_dir_all(&s.crops).unwrap();
    for i in 0..n {
        let stem = format!(
            "cam{}-20261207T2100{:02}.000Z-00000000000000{:02}-1",
            i % 2,
            i,
            i
        );
        image::RgbImage::from_pixel(8, 16, image::Rgb([i as u8, 0, 0]))
            .save(s.crops.join(format!("{stem}.png")))
            .unwrap();
        let p = 0.1 + 0.8 * i as f32 / n.max(2) as f32;
        let side = serde_json::json!({
            "image": format!("{stem}.png"), "camera": format!("cam{}", i % 2),
            "captured_at": format!("2026-12-07T21:00:{i:02}.000Z"), "person": format!("{i:016x}"),
            "view": 1, "box": [0, 0, 8, 16], "frame": [64, 64], "size": [8, 16],
            "bundle": {"name": "t", "version": "1"}, "classes": ["casual", "formal"],
            "probs": [p, 0.95], "decided": if p > 0.5 { vec!["casual", "formal"] } else { vec!["formal"] },
            "head_blur": true,
        });
        std::fs::write(s.crops.join(format!("{stem}.json")), side.to_string()).unwrap();
    }
    (dir, s)
}

#[test]
fn names_are_checked_strictly() {
    for ok in [
        "walkway-20261207T210000.123Z-0123456789abcdef-1.png",
        "a.png",
        "a_b-c.png",
    ] {
        assert!(valid_image_name(ok), "{ok}");
    }
    for bad in [
        "../x.png",
        "a/b.png",
        ".png",
        ".hidden.png",
        "a..b.png",
        "a.jpg",
        "a%2f.png",
        "a\0.png",
        "",
        "a b.png",
    ] {
        assert!(!valid_image_name(bad), "{bad:?}");
    }
}

#[test]
fn least_sure_first_and_filters() {
    let (_d, s) = store(6);
    let crops = s.crops().unwrap();
    assert_eq!(crops.len(), 6);
    let t = Table::default();
    let th = HashMap::new();
    let order: Vec<f32> = select(&crops, &t, &Filter::default(), &th)
        .iter()
        .map(|c| sureness(&c.info, &th).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    assert!(order[0] < 0.1, "{order:?}");
    // A threshold of 0.1 on casual makes the crop with p = 0.1 the least sure.
    let th: HashMap<String, f32> = [("casual".to_string(), 0.1)].into();
    let first = select(&crops, &t, &Filter::default(), &th)[0];
    assert_eq!(first.info.probs[0], 0.1);
    let cam1 = Filter {
        camera: Some("cam1".into()),
        ..Default::default()
    };
    assert_eq!(select(&crops, &t, &cam1, &th).len(), 3);
    // Pre-filled from the sidecar, kept to the taxonomy.
    assert_eq!(
        prefill(&crops[5].info, &tax(&["formal", "sporty"])),
        vec!["formal"]
    );
}

#[test]
fn saves_discards_and_filters_by_label() {
    let (_d, s) = store(4);
    let taxonomy = tax(&["casual", "formal"]);
    let crops = s.crops().unwrap();
    let (a, b) = (&crops[0].name, &crops[1].name);
    s.save(&taxonomy, a, &["formal".into()], "test").unwrap();
    s.save(&taxonomy, b, &["casual".into()], "test").unwrap();
    s.save(&taxonomy, a, &["casual".into(), "formal".into()], "test")
        .unwrap();
    let text = std::fs::read_to_string(s.labels_path()).unwrap();
    assert_eq!(text, format!("image,casual,formal\n{a},1,1\n{b},1,0\n"));
    let t = Table::read(&s.labels_path()).unwrap();
    let th = HashMap::new();
    let f = |labelled, class: Option<&str>| Filter {
        labelled,
        class: class.map(Into::into),
        camera: None,
    };
    assert_eq!(select(&crops, &t, &f(Some(false), None), &th).len(), 2);
    assert_eq!(
        select(&crops, &t, &f(Some(true), Some("formal")), &th).len(),
        1
    );
    assert!(s.save(&taxonomy, a, &["sporty".into()], "t").is_err());
    assert_eq!(
        s.save(&taxonomy, "nope.png", &[], "t").unwrap_err().status,
        404
    );
    s.discard(a, "test").unwrap();
    assert!(!s.crops.join(a).exists());
    assert_eq!(s.crops().unwrap().len(), 3);
    assert_eq!(
        std::fs::read_to_string(s.labels_path()).unwrap(),
        format!("image,casual,formal\n{b},1,0\n")
    );
    let log = std::fs::read_to_string(s.teach.join(LOG)).unwrap();
    assert_eq!(log.lines().count(), 4, "{log}");
    assert!(log.lines().last().unwrap().contains("\"discard\""));
}

#[test]
fn a_new_taxonomy_keeps_columns_adds_zeros_and_refuses_to_drop_used_classes() {
    let (_d, s) = store(2);
    let crops = s.crops().unwrap();
    s.save(
        &tax(&["casual", "formal"]),
        &crops[0].name,
        &["formal".into()],
        "t",
    )
    .unwrap();
    s.set_taxonomy(&tax(&["formal", "sporty", "casual"]), "t")
        .unwrap();
    let text = std::fs::read_to_string(s.labels_path()).unwrap();
    assert_eq!(
        text,
        format!("image,formal,sporty,casual\n{},1,0,0\n", crops[0].name)
    );
    let err = s
        .set_taxonomy(&tax(&["sporty", "casual"]), "t")
        .unwrap_err();
    assert_eq!(err.status, 409);
    assert!(err.error.contains("formal"), "{err:?}");
    assert_eq!(std::fs::read_to_string(s.labels_path()).unwrap(), text);
    let (got, source) = s.taxonomy(&[], Path::new("/nonexistent")).unwrap();
    assert_eq!(
        (got, source),
        (tax(&["formal", "sporty", "casual"]), Source::Page)
    );
    assert!(s.set_taxonomy(&tax(&["a", "a"]), "t").is_err());
    assert!(s.set_taxonomy(&tax(&["image"]), "t").is_err());
}

#[test]
fn an_upload_is_checked_whole_and_writes_nothing_when_a_line_is_wrong() {
    let (_d, s) = store(3);
    let taxonomy = tax(&["casual", "formal"]);
    let crops = s.crops().unwrap();
    let (a, b) = (&crops[0].name, &crops[1].name);
    let bad =
        format!("image,casual,formal,sporty\n{a},1,0,0\nghost-1.png,0,1,0\n{a},0,0,0\n{b},2,0,0\n");
    let problems = s.upload(&taxonomy, "mine.csv", &bad, "t").unwrap_err();
    let lines: Vec<(usize, &str)> = problems
        .iter()
        .map(|p| (p.line, p.problem.as_str()))
        .collect();
    assert_eq!(problems.len(), 4, "{lines:?}");
    assert!(problems
        .iter()
        .all(|p| p.file == "mine.csv" && !p.fix.is_empty()));
    assert!(
        lines[0].0 == 1 && lines[0].1.contains("unknown class \"sporty\""),
        "{lines:?}"
    );
    assert!(
        lines[1].0 == 3 && lines[1].1.contains("unknown image"),
        "{lines:?}"
    );
    assert!(
        lines[2].0 == 4 && lines[2].1.contains("first on line 2"),
        "{lines:?}"
    );
    assert!(
        lines[3].0 == 5 && lines[3].1.contains("0 or 1"),
        "{lines:?}"
    );
    assert!(!s.labels_path().exists());
    let good = format!("image,formal,casual\r\n{a},1,0\r\n{b},0,1\r\n");
    assert_eq!(s.upload(&taxonomy, "mine.csv", &good, "t").unwrap(), 2);
    assert_eq!(
        std::fs::read_to_string(s.labels_path()).unwrap(),
        format!("image,casual,formal\n{a},0,1\n{b},1,0\n")
    );
    assert!(parse("", "e.csv", None).is_err());
}

#[test]
fn the_download_holds_the_labelled_crops_their_sidecars_and_the_csv() {
    let (_d, s) = store(3);
    let taxonomy = tax(&["casual", "formal"]);
    let crops = s.crops().unwrap();
    s.save(&taxonomy, &crops[2].name, &["casual".into()], "t")
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(s.download(&taxonomy, &mut out).unwrap(), 1);
    let mut ar = ::tar::Archive::new(out.as_slice());
    let mut names = vec![];
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name.ends_with("labels.csv") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            assert_eq!(
                text,
                format!("image,casual,formal\n{},1,0\n", crops[2].name)
            );
        }
        names.push(name);
    }
    let stem = crops[2].name.trim_end_matches(".png");
    assert_eq!(
        names,
        vec![
            "stylecam-labels/labels.csv".to_string(),
            "stylecam-labels/taxonomy.json".into(),
            format!("stylecam-labels/images/{stem}.png"),
            format!("stylecam-labels/images/{stem}.json"),
        ]
    );
}
