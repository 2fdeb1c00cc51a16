#!/usr/bin/env python3
"""tests/sink/browser.py URL: the sink's inbox in headless Chromium
(Selenium, chromedriver).  Opens the inbox, has SEND_CMD send a message
signed and encrypted by smrelayd, and checks, without reloading the page,
that it appears with its badges, and that its view names the signer and
"encrypted to bob@partner.example, AES-256-CBC" and shows the decrypted
text; then a hostile message (scripts in the subject and an HTML part) is
listed and viewed and nothing of it runs: no window.pwned, title intact,
no alert, no element of it in the page.  Saves inbox.png and message.png
in the current directory."""
import subprocess
import sys

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

URL = sys.argv[1]
SEND = __import__("os").environ["SEND_CMD"]


def fail(why):
    sys.exit("FAIL: " + why)


def send(kind):
    r = subprocess.run([SEND, kind], capture_output=True, text=True,
                       timeout=180)
    if r.returncode != 0:
        fail("send %s: %s" % (kind, (r.stdout + r.stderr)[-800:]))


def wait(drv, cond, what, secs=30):
    try:
        return WebDriverWait(drv, secs, poll_frequency=0.2).until(
            lambda d: cond(d))
    except Exception:
        drv.save_screenshot("failed.png")
        fail("%s (within %d s); page text: %s" % (
            what, secs, drv.find_element(By.TAG_NAME, "body").text[:1500]))


def rows(drv):
    return drv.find_elements(By.CSS_SELECTOR, "#list tbody tr.msg")


def no_alert(drv):
    try:
        a = drv.switch_to.alert
        fail("an alert is open: %r" % a.text)
    except NoAlertPresentException:
        pass


def harmless(drv, where):
    no_alert(drv)
    if drv.execute_script("return window.pwned") is not None:
        fail(where + ": a script of the message ran (window.pwned is set)")
    if drv.title != "smrelay sink":
        fail(where + ": the title changed to %r" % drv.title)
    n = drv.execute_script(
        "return document.querySelectorAll('img, iframe, b, a[href^=\"javascript\"]').length"
        " + document.querySelectorAll('script').length - 1")
    if n != 0:
        fail(where + ": %d element(s) of the message are in the page" % n)


opts = webdriver.ChromeOptions()
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
          "--disable-gpu", "--window-size=1280,1000"):
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    drv.set_page_load_timeout(60)
    drv.get(URL)
    wait(drv, lambda d: "live" in d.find_element(By.ID, "status").text,
         "the inbox says it is live")
    n0 = len(rows(drv))
    # a mark on the page: still there later means no reload happened
    drv.execute_script("window.__noReload = 'same page';")

    send("signed")
    wait(drv, lambda d: len(rows(d)) == n0 + 1,
         "the message appears in the list")
    if drv.execute_script("return window.__noReload") != "same page":
        fail("the page was reloaded")
    wait(drv, lambda d: "quarterly figures" in rows(d)[0].text, "its subject")
    txt = rows(drv)[0].text
    for want in ("alice@example.com", "bob@partner.example", "signed: pass",
                 "encrypted: AES-256-CBC"):
        if want not in txt:
            fail("row lacks %r: %r" % (want, txt))
    drv.save_screenshot("inbox.png")

    rows(drv)[0].click()
    wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR,
         "#verdict .layer.encrypted .headline"), "the verdict is shown")
    enc = drv.find_element(By.CSS_SELECTOR,
                           "#verdict .layer.encrypted .headline").text
    if "encrypted to bob@partner.example" not in enc or \
            "AES-256-CBC" not in enc:
        fail("encrypted layer says %r" % enc)
    sig = drv.find_element(By.CSS_SELECTOR,
                           "#verdict .layer.signed .headline").text
    if "signed by alice@example.com" not in sig or "pass" not in sig:
        fail("signed layer says %r" % sig)
    body = drv.find_element(By.ID, "texts").text
    if "marker-7f3a" not in body:
        fail("the decrypted text is not shown: %r" % body)
    verdict = drv.find_element(By.ID, "verdict").text
    for want in ("EnvelopedData", "decrypted with", "revocation", "chain"):
        if want not in verdict:
            fail("verdict lacks %r: %r" % (want, verdict))
    drv.save_screenshot("message.png")
    print("signed+encrypted: %s | %s" % (sig, enc))

    drv.find_element(By.ID, "back").click()
    wait(drv, lambda d: d.find_element(By.ID, "listpane").is_displayed(),
         "back to the list")
    send("hostile")
    wait(drv, lambda d: len(rows(d)) == n0 + 2, "the hostile message appears")
    if drv.execute_script("return window.__noReload") != "same page":
        fail("the page was reloaded")
    first = rows(drv)[0].text
    if "<script>window.pwned=1" not in first:
        fail("the subject is not shown as text: %r" % first)
    harmless(drv, "list")
    rows(drv)[0].click()
    wait(drv, lambda d: "hostile-html-marker" in
         d.find_element(By.ID, "texts").text, "the HTML part as text")
    if "<script>" not in drv.find_element(By.ID, "texts").text:
        fail("the HTML part is not shown as source text")
    if "<script>" not in drv.find_element(By.ID, "subject").text:
        fail("the subject heading is not the literal text")
    harmless(drv, "message view")
    drv.save_screenshot("hostile.png")
    print("hostile message: nothing ran")
finally:
    drv.quit()
