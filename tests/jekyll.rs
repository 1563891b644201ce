//! `crier --jekyll` on a Jekyll site of our own (`tests/jekyll-site`): no crier.toml, the site's
//! settings from `_config.yml` and `_data/authors.yml`, Jekyll's links, ids and dates, and the
//! front matter jekyll-feed reads, checked through feed-rs, roxmltree, serde_json and the bytes.
//! Interop: Jekyll 4.3 with jekyll-feed builds the same site in every permalink style, and its
//! entries' links, ids and dates equal crier's one by one; feedparser reads every feed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{CRIER, Daemon, feedparser_check, interop, repo_root, require_feedparser, require_tool, text};

/// Link, id, published, updated of each entry, newest first, as Jekyll 4.3.1 + jekyll-feed 0.17
/// wrote them for `tests/jekyll-site` (checked again against Jekyll by the interop test).
const EXPECTED: [(&str, &str, &str, &str); 11] = [
    (
        "business%20news/%E8%B4%A2%E7%BB%8F/2021/12/24/unquoted.html",
        "business%20news/%E8%B4%A2%E7%BB%8F/2021/12/24/unquoted",
        "2021-12-24T00:34:36+08:00",
        "2021-12-24T00:34:36+08:00",
    ),
    ("2021/12/23/quoted.html", "2021/12/23/quoted", "2021-12-23T16:34:36+08:00", "2021-12-23T16:34:36+08:00"),
    ("2021/12/23/offset.html", "2021/12/23/offset", "2021-12-23T11:00:00+08:00", "2021-12-23T11:00:00+08:00"),
    ("2021/12/20/from-name.html", "2021/12/20/from-name", "2021-12-20T00:00:00+08:00", "2021-12-20T00:00:00+08:00"),
    (
        "alpha/beta/2021/12/19/My-Slug.html",
        "alpha/beta/2021/12/19/My%20Slug",
        "2021-12-19T09:00:00+08:00",
        "2021-12-19T09:00:00+08:00",
    ),
    ("news/2021/12/18/liquid.html", "news/2021/12/18/liquid", "2021-12-18T08:00:00+08:00", "2021-12-18T08:00:00+08:00"),
    ("custom/fm-permalink/", "custom/fm-permalink", "2021-12-17T10:00:00+08:00", "2021-12-17T10:00:00+08:00"),
    (
        "foo%20bar/2021/12/16/%E4%BD%A0%E5%A5%BD-%E4%B8%96%E7%95%8C.html",
        "foo%20bar/2021/12/16/%E4%BD%A0%E5%A5%BD-%E4%B8%96%E7%95%8C",
        "2021-12-16T00:00:00+08:00",
        "2021-12-16T00:00:00+08:00",
    ),
    ("2021/12/15/updated.html", "2021/12/15/updated", "2021-12-15T12:00:00+08:00", "2022-01-05T18:00:00+08:00"),
    ("2021/12/14/no-seconds.html", "2021/12/14/no-seconds", "2021-12-14T16:34:00+08:00", "2021-12-14T16:34:00+08:00"),
    (
        "news/a%7Cb/2021/01/05/Odd.Name-x-%C3%BC.html",
        "news/a%7Cb/2021/01/05/Odd.Name%20%5Bx%5D%20%C3%BC",
        "2021-01-05T18:00:00+08:00",
        "2021-01-05T18:00:00+08:00",
    ),
];

const SITE_URL: &str = "https://news.example.org/blog/";

/// A copy of the fixture site in a temporary folder, so that neither Jekyll's cache nor
/// crier's state lands in the repository; `site/` inside it, and room for `feeds/` beside.
fn site_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = repo_root().join("tests/jekyll-site");
    for entry in walkdir::WalkDir::new(&from).into_iter().map(Result::unwrap) {
        let to = dir.path().join("site").join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&to).unwrap();
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
    dir
}

/// `crier COMMAND --jekyll site --feeds feeds` in `dir`, which holds no crier.toml.
fn crier(dir: &Path, command: &str) -> Output {
    Command::new(CRIER).current_dir(dir).args([command, "--jekyll", "site", "--feeds", "feeds"]).output().unwrap()
}

fn feed(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join("feeds").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (link, id, published, updated) of each Atom entry, in document order.
fn atom_entries(xml: &str) -> Vec<[String; 4]> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    doc.root_element()
        .children()
        .filter(|n| n.has_tag_name("entry"))
        .map(|entry| {
            let link = entry
                .children()
                .find(|c| c.has_tag_name("link") && c.attribute("rel") == Some("alternate"))
                .and_then(|l| l.attribute("href"))
                .unwrap();
            let child = |name: &str| entry.children().find(|c| c.has_tag_name(name)).and_then(|c| c.text()).unwrap();
            [link, child("id"), child("published"), child("updated")].map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_jekyll_site_publishes_with_no_crier_toml_and_jekylls_links_ids_and_dates() {
    let dir = site_copy();
    let out = crier(dir.path(), "build");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}{stderr}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("11 published") && stdout.contains("1 drafts"),
        "_drafts and the undated file stay out: {stdout}"
    );
    assert!(stderr.contains("notes.md:1: the file name does not start with a date"), "{stderr}");
    assert!(stderr.contains("2021-12-18-liquid.md:9: Liquid tag `{% include %}`"), "{stderr}");

    let expected: Vec<[String; 4]> = EXPECTED
        .iter()
        .map(|(link, id, published, updated)| {
            [format!("{SITE_URL}{link}"), format!("{SITE_URL}{id}"), published.to_string(), updated.to_string()]
        })
        .collect();
    assert_eq!(atom_entries(&feed(dir.path(), "feed.atom")), expected);

    for rel in ["feed.rss", "feed.atom", "feed.json"] {
        let parsed = feed_rs::parser::parse(feed(dir.path(), rel).as_bytes()).unwrap();
        assert_eq!(parsed.title.unwrap().content, "青岛财经 Daily", "{rel}: _config.yml's title, as plain text");
        let ids: Vec<String> = parsed.entries.iter().map(|e| e.id.clone()).collect();
        assert_eq!(
            ids,
            expected.iter().map(|e| e[1].clone()).collect::<Vec<_>>(),
            "{rel}: Jekyll's ids in every format"
        );
        let links: Vec<&str> = parsed.entries.iter().map(|e| e.links[0].href.as_str()).collect();
        assert_eq!(links, expected.iter().map(|e| e[0].as_str()).collect::<Vec<_>>(), "{rel}");
    }

    // The site's settings: description, language, author from the authors data, icon and logo.
    let atom = feed(dir.path(), "feed.atom");
    for needle in [
        "<feed xmlns=\"http://www.w3.org/2005/Atom\" xmlns:media=\"http://search.yahoo.com/mrss/\" xml:lang=\"zh-CN\">",
        "<subtitle>Business news from Qingdao &amp; beyond</subtitle>",
        "<author><name>编辑部</name><email>desk@news.example.org</email></author>",
        "<icon>https://news.example.org/blog/assets/icon.png</icon>",
        "<logo>https://news.example.org/blog/assets/logo.png</logo>",
    ] {
        assert!(atom.contains(needle), "{needle} in {atom}");
    }
    let rss = feed(dir.path(), "feed.rss");
    assert!(rss.contains("<language>zh-CN</language>"), "{rss}");
    assert!(
        rss.contains("<image><url>https://news.example.org/blog/assets/logo.png</url><title>青岛财经 Daily</title><link>https://news.example.org/blog/</link></image>"),
        "{rss}"
    );
    let json: serde_json::Value = serde_json::from_str(&feed(dir.path(), "feed.json")).unwrap();
    assert_eq!(json["icon"], "https://news.example.org/blog/assets/icon.png", "square, as JSON Feed's icon is");
    assert_eq!(json["favicon"], "https://news.example.org/blog/assets/icon.png");
    assert_eq!(json["authors"][0]["name"], "编辑部");
    assert_eq!(json["items"].as_array().unwrap().len(), 11, "posts_limit: 50 lets every post in");
}

/// The item of `json` whose URL ends with `tail`.
fn json_item<'a>(json: &'a serde_json::Value, tail: &str) -> &'a serde_json::Value {
    json["items"].as_array().unwrap().iter().find(|i| i["url"].as_str().unwrap().ends_with(tail)).unwrap()
}

/// The `<entry>` or `<item>` element text of `xml` that holds `needle`.
fn element_with<'a>(xml: &'a str, tag: &str, needle: &str) -> &'a str {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    xml.split(open.as_str())
        .skip(1)
        .map(|rest| &rest[..rest.find(close.as_str()).unwrap()])
        .find(|element| element.contains(needle))
        .unwrap_or_else(|| panic!("no <{tag}> with {needle}"))
}

#[test]
fn jekyll_feed_front_matter_in_every_format() {
    let dir = site_copy();
    assert_eq!(crier(dir.path(), "build").status.code(), Some(0));
    let (rss, atom) = (feed(dir.path(), "feed.rss"), feed(dir.path(), "feed.atom"));
    let json: serde_json::Value = serde_json::from_str(&feed(dir.path(), "feed.json")).unwrap();

    // `image`: a site path, `{path: ...}`, a URL; Media RSS in RSS and Atom, `image` in JSON Feed.
    for (post, image) in [
        ("/unquoted.html", "https://news.example.org/blog/img/a.png"),
        ("/offset.html", "https://news.example.org/blog/img/b.png"),
        ("/My-Slug.html", "https://cdn.example.org/photo.png"),
    ] {
        let thumbnail = format!("<media:thumbnail url=\"{image}\"");
        let content = format!("<media:content medium=\"image\" url=\"{image}\"");
        for (format, element) in
            [("rss", element_with(&rss, "item", post)), ("atom", element_with(&atom, "entry", post))]
        {
            assert!(element.contains(&thumbnail) && element.contains(&content), "{format} {post}: {element}");
        }
        assert_eq!(json_item(&json, post)["image"], image);
    }
    assert!(!element_with(&rss, "item", "/quoted.html").contains("media:"), "no image, no Media RSS");

    // `author: alice` is a key of _data/authors.yml; HTML left out of the title; `lang`.
    let atom_entry = element_with(&atom, "entry", "/quoted.html");
    assert!(
        atom_entry.contains("<author><name>Alice Liddell</name><email>alice@example.org</email><uri>https://alice.example.org/</uri></author>"),
        "{atom_entry}"
    );
    assert!(atom_entry.contains("<title xml:lang=\"en-US\">Hello World second line</title>"), "{atom_entry}");
    let rss_item = element_with(&rss, "item", "/quoted.html");
    assert!(rss_item.contains("<title>Hello World second line</title>"), "{rss_item}");
    assert!(rss_item.contains("<dc:creator>Alice Liddell</dc:creator><dc:language>en-US</dc:language>"), "{rss_item}");
    let quoted = json_item(&json, "/quoted.html");
    assert_eq!((&quoted["title"], &quoted["language"]), (&"Hello World second line".into(), &"en-US".into()));
    assert_eq!(quoted["authors"][0]["name"], "Alice Liddell");

    // `excerpt: ""`: no summary in any format, the whole post still there.
    let rss_item = element_with(&rss, "item", "/offset.html");
    assert!(!rss_item.contains("<description>") && rss_item.contains("<content:encoded>"), "{rss_item}");
    let atom_entry = element_with(&atom, "entry", "/offset.html");
    assert!(!atom_entry.contains("<summary") && atom_entry.contains("<content"), "{atom_entry}");
    assert!(json_item(&json, "/offset.html").get("summary").is_none());

    // `feed: {excerpt_only: true}`: the summary only.
    let rss_item = element_with(&rss, "item", "/from-name.html");
    assert!(rss_item.contains("Only this first paragraph") && !rss_item.contains("content:encoded"), "{rss_item}");
    assert!(!element_with(&atom, "entry", "/from-name.html").contains("<content"));
    let from_name = json_item(&json, "/from-name.html");
    assert!(
        from_name.get("content_html").is_none() && from_name["content_text"].as_str().unwrap().starts_with("Only this")
    );
    assert!(!rss.contains("The rest is on the site"), "the rest of an excerpt-only post is not published");

    // Liquid in the body: page and site variables, a capture, filters; the include left out.
    let liquid = json_item(&json, "/liquid.html");
    let html = liquid["content_html"].as_str().unwrap();
    assert!(
        html.contains("Title=Liquid inside site=https://news.example.org/blog by <b>青岛财经 DAILY</b> A B"),
        "{html}"
    );
    assert!(!html.contains("{%") && !html.contains("include") && html.contains("The end."), "{html}");
    assert!(
        html.contains("<img src=\"https://news.example.org/blog/assets/logo.png\" alt=\"logo\">"),
        "Jekyll's relative_url: {html}"
    );
    assert_eq!(liquid["summary"], "A given description", "tags stripped from the description");
}

#[test]
fn crier_toml_wins_and_a_bad_value_in_config_yml_names_the_file_and_key() {
    let dir = site_copy();
    let config = "jekyll = \"site\"\nfeeds = \"feeds\"\ntitle = \"Our own title\"\nitems = 3\n[authors.alice]\nname = \"A. Liddell\"\n";
    fs::write(dir.path().join("crier.toml"), config).unwrap();
    let out = Command::new(CRIER).current_dir(dir.path()).args(["build", "--config", "crier.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_str(&feed(dir.path(), "feed.json")).unwrap();
    assert_eq!(json["title"], "Our own title");
    assert_eq!(json["home_page_url"], SITE_URL, "what crier.toml leaves out still comes from _config.yml");
    assert_eq!(json["items"].as_array().unwrap().len(), 3);
    assert_eq!(json_item(&json, "/quoted.html")["authors"][0]["name"], "A. Liddell", "crier.toml's [authors] win");

    let config_yml = dir.path().join("site/_config.yml");
    let original = fs::read_to_string(&config_yml).unwrap();
    for (bad, key) in [
        ("timezone: Mars/Olympus", "`timezone`"),
        ("url: not a url", "`url`"),
        ("permalink: /:nope/:title", "`permalink`"),
        ("feed:\n  posts_limit: many", "`feed.posts_limit`"),
        ("title: [a: b", "line"),
    ] {
        fs::write(&config_yml, format!("{original}\n{bad}\n")).unwrap();
        let out = crier(dir.path(), "check");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("_config.yml") && stderr.contains(key), "{bad}: {stderr}");
    }
    fs::write(&config_yml, format!("{original}\ntheme: minima\nsass: {{style: compressed}}\n")).unwrap();
    assert_eq!(crier(dir.path(), "check").status.code(), Some(1), "Jekyll's own keys are not crier's business");
}

#[test]
fn serve_republishes_when_config_yml_or_the_authors_change() {
    let dir = site_copy();
    let config = "jekyll = \"site\"\nfeeds = \"feeds\"\nlisten = \"127.0.0.1:0\"\nbase_url = \"http://127.0.0.1/\"\n";
    let daemon = Daemon::start_with(dir.path(), config);
    let title = || {
        let body = daemon.get("/feeds/feed.json", &[]).text();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        (
            json["title"].as_str().unwrap_or_default().to_owned(),
            json["authors"][0]["name"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(title(), ("青岛财经 Daily".to_owned(), "编辑部".to_owned()));
    let site: PathBuf = dir.path().join("site");
    let config_yml = fs::read_to_string(site.join("_config.yml")).unwrap();
    fs::write(site.join("_config.yml"), config_yml.replace("青岛财经 <em>Daily</em>", "青岛财经 Weekly")).unwrap();
    daemon.wait_for("the new title", || title().0 == "青岛财经 Weekly");
    let authors = fs::read_to_string(site.join("_data/authors.yml")).unwrap();
    fs::write(site.join("_data/authors.yml"), authors.replace("编辑部", "新闻编辑部")).unwrap();
    daemon.wait_for("the new author", || title().1 == "新闻编辑部");
}

/// Jekyll's permalink styles, and patterns, that the interop test builds the site with.
const STYLES: [&str; 8] = [
    "date",
    "pretty",
    "ordinal",
    "weekdate",
    "none",
    "/:year/:month/:title/",
    "/news/:categories/:slug.html",
    "/:w_year/:short_month/:long_month/:long_day/:w_day/:slugified_categories/:i_month-:i_day/:title:output_ext",
];

/// The time the fixture's draft is given as its modification time: 2020-02-02 03:04:05 UTC.
const DRAFT_TIME: u64 = 1_580_612_645;

/// A copy of the fixture site with `show_drafts: true`, its draft modified at [`DRAFT_TIME`].
fn site_with_drafts() -> tempfile::TempDir {
    let dir = site_copy();
    let site = dir.path().join("site");
    let config = fs::read_to_string(site.join("_config.yml")).unwrap();
    fs::write(site.join("_config.yml"), format!("{config}show_drafts: true\n")).unwrap();
    let draft = fs::File::options().write(true).open(site.join("_drafts/not-yet.md")).unwrap();
    draft.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(DRAFT_TIME)).unwrap();
    dir
}

#[test]
fn show_drafts_publishes_drafts_dated_by_their_file_and_serve_watches_them() {
    let dir = site_with_drafts();
    let out = crier(dir.path(), "build");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("not-yet.md"), "a draft needs no date: {stderr}");
    let entries = atom_entries(&feed(dir.path(), "feed.atom"));
    let draft = format!("{SITE_URL}2020/02/02/not-yet");
    assert_eq!(
        entries.last().unwrap(),
        &[format!("{draft}.html"), draft, "2020-02-02T11:04:05+08:00".into(), "2020-02-02T11:04:05+08:00".into()]
    );

    let config = "jekyll = \"site\"\nfeeds = \"feeds\"\nlisten = \"127.0.0.1:0\"\nbase_url = \"http://127.0.0.1/\"\n";
    let daemon = Daemon::start_with(dir.path(), config);
    fs::write(dir.path().join("site/_drafts/2021-12-30-new-draft.md"), "---\ntitle: A new draft\n---\nBody.\n")
        .unwrap();
    daemon.wait_for("the new draft", || daemon.get("/feeds/feed.json", &[]).text().contains("A new draft"));
}

#[test]
fn jekyll_itself_makes_the_same_links_ids_and_dates_in_every_permalink_style() {
    if !interop("Jekyll 4.3 + jekyll-feed build the fixture site") {
        return;
    }
    require_tool("jekyll", &["--version"], "apt-get install jekyll ruby-jekyll-feed");
    // Every style on the site as it is, then the first with its drafts shown.
    let runs = STYLES.iter().map(|style| (*style, false)).chain([(STYLES[0], true)]);
    for (style, drafts) in runs {
        let dir = if drafts { site_with_drafts() } else { site_copy() };
        let site = dir.path().join("site");
        let config_yml = site.join("_config.yml");
        let config = fs::read_to_string(&config_yml).unwrap();
        fs::write(&config_yml, format!("{config}permalink: \"{style}\"\n")).unwrap();
        let out = Command::new("jekyll")
            .args(["build", "--quiet", "-s"])
            .arg(&site)
            .arg("-d")
            .arg(dir.path().join("jekyll-out"))
            .env("JEKYLL_ENV", "production")
            .output()
            .unwrap();
        assert!(out.status.success(), "jekyll build ({style}): {}{}", text(&out.stdout), text(&out.stderr));
        let jekyll = fs::read_to_string(dir.path().join("jekyll-out/feed.xml")).unwrap();
        assert_eq!(crier(dir.path(), "build").status.code(), Some(0), "{style}");
        let ours = atom_entries(&feed(dir.path(), "feed.atom"));
        assert_eq!(ours.len(), if drafts { 12 } else { 11 }, "{style}");
        assert_eq!(ours, atom_entries(&jekyll), "{style}: entry by entry, link, id, published, updated");
    }
}

/// What the fixture's site feed says, after every feed is checked.
const SITE_FEED: &str = r#"
site = feedparser.parse(str(root / "feed.atom"))
images = [e.media_thumbnail[0]["url"] for e in site.entries if "media_thumbnail" in e]
print(count, site.feed.title, site.feed.icon, len(images), images[0], site.entries[1].title_detail.language)
"#;

#[test]
fn python_feedparser_reads_the_jekyll_sites_feeds() {
    if !interop("python feedparser reads the Jekyll site's feeds") {
        return;
    }
    require_feedparser();
    let dir = site_copy();
    assert_eq!(crier(dir.path(), "build").status.code(), Some(0));
    let stdout = feedparser_check(&dir.path().join("feeds"), SITE_URL, SITE_FEED);
    assert!(
        stdout.starts_with(
            "22 青岛财经 Daily https://news.example.org/blog/assets/icon.png 3 https://news.example.org/blog/img/a.png en-US"
        ),
        "{stdout}"
    );
}

/// Whether `url` is what the W3C Feed Validation Service accepts as a link: absolute http(s),
/// ASCII only (an IRI is flagged).
fn valid_link(url: &str) -> bool {
    url.is_ascii() && (url.starts_with("https://") || url.starts_with("http://"))
}

#[test]
fn the_jekyll_sites_feeds_keep_the_validators_rules() {
    // The W3C Feed Validation Service is a web service, out of reach of tests; these are the rules
    // of it that feeds like these run into: links absolute and ASCII in every element and
    // attribute and in the HTML carried, well-formed XML, a guid and an RFC 822 date per RSS item,
    // an author per Atom entry, languages as language tags.
    let dir = site_copy();
    assert_eq!(crier(dir.path(), "build").status.code(), Some(0));
    for rel in ["feed.rss", "feed.atom", "categories/news.rss", "categories/news.atom", "tags/青岛.rss"] {
        let xml = feed(dir.path(), rel);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for node in doc.descendants().filter(|n| n.is_element()) {
            for attribute in node.attributes().filter(|a| matches!(a.name(), "href" | "url" | "base")) {
                assert!(valid_link(attribute.value()), "{rel}: {}={}", attribute.name(), attribute.value());
            }
            let name = node.tag_name().name();
            if matches!(name, "link" | "guid" | "id" | "icon" | "logo" | "url") && node.text().is_some() {
                assert!(valid_link(node.text().unwrap()), "{rel}: <{name}>{}", node.text().unwrap());
            }
            if let Some(lang) = node.attribute(("http://www.w3.org/XML/1998/namespace", "lang")) {
                assert!(lang == "zh-CN" || lang == "en-US", "{rel}: xml:lang={lang}");
            }
            if matches!(name, "encoded" | "content") {
                let html = node.text().unwrap_or_default();
                for quoted in html.split(['"']).skip(1).step_by(2).filter(|v| v.contains('/')) {
                    assert!(
                        valid_link(quoted) || !html.contains(&format!("=\"{quoted}\"")),
                        "{rel}: {quoted} in {html}"
                    );
                }
            }
            if name == "item" {
                let has = |child: &str| node.children().any(|c| c.has_tag_name(child));
                assert!(has("guid") && has("pubDate") && has("title"), "{rel}: an item without guid, pubDate or title");
            }
            if name == "entry" {
                assert!(node.children().any(|c| c.has_tag_name("author")), "{rel}: an entry without author");
            }
            if name == "pubDate" {
                let date = node.text().unwrap();
                assert!(chrono::DateTime::parse_from_rfc2822(date).is_ok(), "{rel}: pubDate {date}");
            }
        }
    }
}
