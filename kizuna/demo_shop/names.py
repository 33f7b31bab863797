"""Japanese names and addresses the demo shop draws its customers from.

Embedded rather than fetched, so the generator runs offline and gives the same shop
everywhere. Every string is in JIS X 0208, so a shop exported as cp932 (Shift_JIS)
encodes without loss. Weights are rough frequencies, enough for realistic skew: the
common surnames and the populous prefectures come up more often.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Surname:
    kanji: str
    kana: str
    romaji: str
    weight: float


@dataclass(frozen=True)
class GivenName:
    kanji: str
    kana: str
    romaji: str
    gender: str
    #: 0 = typical of people born before ~1970, 1 = ~1970-1990, 2 = after ~1985.
    era: int


@dataclass(frozen=True)
class City:
    prefecture: str
    city: str
    #: First three digits of the postal codes used in the city.
    postal_prefix: str
    weight: float


def _surnames(text: str) -> tuple[Surname, ...]:
    rows = (line.split() for line in text.strip().splitlines())
    return tuple(Surname(k, kana, r, float(w)) for k, kana, r, w in rows)


def _given(text: str, gender: str) -> tuple[GivenName, ...]:
    rows = (line.split() for line in text.strip().splitlines())
    return tuple(GivenName(k, kana, r, gender, int(era)) for k, kana, r, era in rows)


SURNAMES: tuple[Surname, ...] = _surnames("""
佐藤 サトウ sato 187
鈴木 スズキ suzuki 180
高橋 タカハシ takahashi 142
田中 タナカ tanaka 134
伊藤 イトウ ito 108
渡辺 ワタナベ watanabe 108
山本 ヤマモト yamamoto 108
中村 ナカムラ nakamura 105
小林 コバヤシ kobayashi 104
加藤 カトウ kato 89
吉田 ヨシダ yoshida 84
山田 ヤマダ yamada 82
佐々木 ササキ sasaki 68
山口 ヤマグチ yamaguchi 64
松本 マツモト matsumoto 63
井上 イノウエ inoue 61
木村 キムラ kimura 58
林 ハヤシ hayashi 54
斎藤 サイトウ saito 54
清水 シミズ shimizu 53
山崎 ヤマザキ yamazaki 49
森 モリ mori 47
池田 イケダ ikeda 44
橋本 ハシモト hashimoto 44
阿部 アベ abe 44
石川 イシカワ ishikawa 43
山下 ヤマシタ yamashita 42
中島 ナカジマ nakajima 42
石井 イシイ ishii 41
小川 オガワ ogawa 41
前田 マエダ maeda 40
岡田 オカダ okada 40
長谷川 ハセガワ hasegawa 40
藤田 フジタ fujita 39
後藤 ゴトウ goto 39
近藤 コンドウ kondo 38
村上 ムラカミ murakami 37
遠藤 エンドウ endo 35
青木 アオキ aoki 35
坂本 サカモト sakamoto 35
斉藤 サイトウ saito 34
福田 フクダ fukuda 34
太田 オオタ ota 33
西村 ニシムラ nishimura 33
藤井 フジイ fujii 32
金子 カネコ kaneko 32
岡本 オカモト okamoto 32
藤原 フジワラ fujiwara 32
中野 ナカノ nakano 31
三浦 ミウラ miura 31
原田 ハラダ harada 30
中川 ナカガワ nakagawa 30
松田 マツダ matsuda 30
竹内 タケウチ takeuchi 30
小野 オノ ono 30
田村 タムラ tamura 29
中山 ナカヤマ nakayama 28
和田 ワダ wada 28
石田 イシダ ishida 28
森田 モリタ morita 27
上田 ウエダ ueda 27
原 ハラ hara 27
内田 ウチダ uchida 27
柴田 シバタ shibata 26
酒井 サカイ sakai 26
宮崎 ミヤザキ miyazaki 26
横山 ヨコヤマ yokoyama 26
高木 タカギ takagi 25
安藤 アンドウ ando 25
宮本 ミヤモト miyamoto 25
大野 オオノ ohno 24
小島 コジマ kojima 24
谷口 タニグチ taniguchi 23
今井 イマイ imai 23
工藤 クドウ kudo 23
高田 タカダ takada 22
増田 マスダ masuda 22
丸山 マルヤマ maruyama 22
杉山 スギヤマ sugiyama 22
村田 ムラタ murata 22
大塚 オオツカ otsuka 21
新井 アライ arai 21
小山 コヤマ koyama 21
平野 ヒラノ hirano 21
藤本 フジモト fujimoto 21
河野 コウノ kono 20
上野 ウエノ ueno 20
野口 ノグチ noguchi 20
武田 タケダ takeda 20
松井 マツイ matsui 20
千葉 チバ chiba 20
岩崎 イワサキ iwasaki 19
菅原 スガワラ sugawara 19
木下 キノシタ kinoshita 19
久保 クボ kubo 19
佐野 サノ sano 19
野村 ノムラ nomura 19
松尾 マツオ matsuo 19
市川 イチカワ ichikawa 18
菊地 キクチ kikuchi 18
杉本 スギモト sugimoto 18
古川 フルカワ furukawa 18
大西 オオニシ onishi 18
島田 シマダ shimada 18
水野 ミズノ mizuno 18
桜井 サクライ sakurai 18
高野 タカノ takano 17
吉川 ヨシカワ yoshikawa 17
山内 ヤマウチ yamauchi 17
西田 ニシダ nishida 17
飯田 イイダ iida 17
菊池 キクチ kikuchi 17
西川 ニシカワ nishikawa 17
小松 コマツ komatsu 17
北村 キタムラ kitamura 17
安田 ヤスダ yasuda 16
五十嵐 イガラシ igarashi 16
川口 カワグチ kawaguchi 16
平田 ヒラタ hirata 16
関 セキ seki 16
中田 ナカタ nakata 16
久保田 クボタ kubota 16
服部 ハットリ hattori 16
東 アズマ azuma 16
岩田 イワタ iwata 16
土屋 ツチヤ tsuchiya 15
川村 カワムラ kawamura 15
星野 ホシノ hoshino 15
大橋 オオハシ ohashi 15
""")

GIVEN_NAMES: tuple[GivenName, ...] = _given("""
和子 カズコ kazuko 0
幸子 サチコ sachiko 0
節子 セツコ setsuko 0
久子 ヒサコ hisako 0
恵子 ケイコ keiko 0
洋子 ヨウコ yoko 0
京子 キョウコ kyoko 0
弘子 ヒロコ hiroko 0
良子 ヨシコ yoshiko 0
文子 フミコ fumiko 0
礼子 レイコ reiko 0
貴子 タカコ takako 0
久美子 クミコ kumiko 0
由美子 ユミコ yumiko 0
裕子 ユウコ yuko 1
真由美 マユミ mayumi 1
明美 アケミ akemi 1
直美 ナオミ naomi 1
智子 トモコ tomoko 1
典子 ノリコ noriko 1
純子 ジュンコ junko 1
陽子 ヨウコ yoko 1
雅美 マサミ masami 1
由美 ユミ yumi 1
恵美 エミ emi 1
香織 カオリ kaori 1
美紀 ミキ miki 1
理恵 リエ rie 1
聡子 サトコ satoko 1
友美 トモミ tomomi 1
里美 サトミ satomi 1
美穂 ミホ miho 1
亜希子 アキコ akiko 1
恵理子 エリコ eriko 1
美由紀 ミユキ miyuki 1
由香 ユカ yuka 1
美香 ミカ mika 1
真理 マリ mari 1
由紀 ユキ yuki 1
千春 チハル chiharu 2
麻衣 マイ mai 2
愛 アイ ai 2
彩 アヤ aya 2
瞳 ヒトミ hitomi 2
舞 マイ mai 2
優子 ユウコ yuko 2
美咲 ミサキ misaki 2
沙織 サオリ saori 2
奈緒 ナオ nao 2
綾 アヤ aya 2
遥 ハルカ haruka 2
葵 アオイ aoi 2
結衣 ユイ yui 2
七海 ナナミ nanami 2
さくら サクラ sakura 2
早紀 サキ saki 2
千尋 チヒロ chihiro 2
""", "female") + _given("""
清 キヨシ kiyoshi 0
茂 シゲル shigeru 0
実 ミノル minoru 0
勝 マサル masaru 0
進 ススム susumu 0
豊 ユタカ yutaka 0
義男 ヨシオ yoshio 0
光男 ミツオ mitsuo 0
和夫 カズオ kazuo 0
敏夫 トシオ toshio 0
正 タダシ tadashi 0
博 ヒロシ hiroshi 0
弘 ヒロシ hiroshi 0
修 オサム osamu 0
昭 アキラ akira 0
武 タケシ takeshi 0
隆 タカシ takashi 1
浩 ヒロシ hiroshi 1
誠 マコト makoto 1
明 アキラ akira 1
孝 タカシ takashi 1
健一 ケンイチ kenichi 1
秀樹 ヒデキ hideki 1
英樹 ヒデキ hideki 1
学 マナブ manabu 1
聡 サトシ satoshi 1
徹 トオル toru 1
哲也 テツヤ tetsuya 1
浩二 コウジ koji 1
一郎 イチロウ ichiro 1
雄一 ユウイチ yuichi 1
康弘 ヤスヒロ yasuhiro 1
裕之 ヒロユキ hiroyuki 1
正人 マサト masato 1
晃 アキラ akira 1
剛 ツヨシ tsuyoshi 1
和也 カズヤ kazuya 2
直樹 ナオキ naoki 2
大輔 ダイスケ daisuke 2
拓也 タクヤ takuya 2
健太 ケンタ kenta 2
翔太 ショウタ shota 2
大樹 ダイキ daiki 2
達也 タツヤ tatsuya 2
亮 リョウ ryo 2
淳 ジュン jun 2
健 ケン ken 2
信也 シンヤ shinya 2
陽介 ヨウスケ yosuke 2
智也 トモヤ tomoya 2
優太 ユウタ yuta 2
悠斗 ユウト yuto 2
俊介 シュンスケ shunsuke 2
洋平 ヨウヘイ yohei 2
翔 ショウ sho 2
蓮 レン ren 2
""", "male")


def _cities(text: str) -> tuple[City, ...]:
    """Parse `prefecture population(10k) city:prefix,prefix city:prefix ...` lines.

    A prefecture's population is split evenly over its listed cities and each city's
    share over its postal prefixes, so the big prefectures dominate as they do in a
    real customer list.
    """
    cities: list[City] = []
    for line in text.strip().splitlines():
        prefecture, population, *entries = line.split()
        for entry in entries:
            city, prefixes = entry.split(":")
            codes = prefixes.split(",")
            for code in codes:
                cities.append(City(prefecture, city, code, float(population) / len(entries) / len(codes)))
    return tuple(cities)


CITIES: tuple[City, ...] = _cities("""
北海道 510 札幌市中央区:060,064 札幌市北区:001,002 旭川市:070,071 函館市:040,041
青森県 120 青森市:030 八戸市:031 弘前市:036
岩手県 118 盛岡市:020 一関市:021
宮城県 228 仙台市青葉区:980,981 仙台市泉区:981 石巻市:986
秋田県 94 秋田市:010
山形県 104 山形市:990
福島県 179 福島市:960 郡山市:963 いわき市:970,971
茨城県 285 水戸市:310 つくば市:305 日立市:317
栃木県 191 宇都宮市:320,321 小山市:323
群馬県 191 前橋市:371 高崎市:370
埼玉県 730 さいたま市浦和区:330 さいたま市大宮区:330 川口市:332,333 川越市:350 所沢市:359 越谷市:343
千葉県 630 千葉市中央区:260 船橋市:273,274 松戸市:270,271 柏市:277 市川市:272
東京都 1400 新宿区:160,169 世田谷区:154,155,156,157,158 練馬区:176,177,178,179 大田区:143,144,145,146 杉並区:166,167,168 江戸川区:132,133,134 足立区:120,121,123 八王子市:192,193 町田市:194,195 品川区:140,141,142
神奈川県 920 横浜市港北区:222,223 横浜市青葉区:225,227 横浜市戸塚区:244,245 川崎市中原区:211 相模原市中央区:252 藤沢市:251 横須賀市:238,239
新潟県 215 新潟市中央区:950,951 長岡市:940
富山県 102 富山市:930,939
石川県 112 金沢市:920,921
福井県 75 福井市:910
山梨県 80 甲府市:400
長野県 203 長野市:380,381 松本市:390,399
岐阜県 195 岐阜市:500,501 大垣市:503
静岡県 360 静岡市葵区:420 浜松市中央区:430,432 沼津市:410
愛知県 750 名古屋市中区:460 名古屋市千種区:464 名古屋市緑区:458 豊田市:470,471 岡崎市:444 一宮市:491
三重県 175 津市:514 四日市市:510
滋賀県 141 大津市:520 草津市:525
京都府 255 京都市左京区:606 京都市右京区:615,616 宇治市:611
大阪府 880 大阪市北区:530 大阪市天王寺区:543 堺市北区:591 豊中市:560,561 吹田市:564,565 東大阪市:577,578 枚方市:573
兵庫県 540 神戸市中央区:650,651 神戸市東灘区:658 姫路市:670,671 西宮市:662,663 尼崎市:660,661
奈良県 131 奈良市:630,631
和歌山県 91 和歌山市:640,641
鳥取県 54 鳥取市:680
島根県 66 松江市:690
岡山県 187 岡山市北区:700,701 倉敷市:710
広島県 275 広島市中区:730 広島市安佐南区:731 福山市:720,721
山口県 131 下関市:750,751 山口市:753
徳島県 71 徳島市:770
香川県 94 高松市:760,761
愛媛県 131 松山市:790,791
高知県 68 高知市:780,781
福岡県 510 福岡市博多区:812 福岡市中央区:810 福岡市東区:813 北九州市小倉北区:802,803 久留米市:830
佐賀県 80 佐賀市:840
長崎県 128 長崎市:850,851 佐世保市:857
熊本県 172 熊本市中央区:860,862
大分県 111 大分市:870
宮崎県 105 宮崎市:880
鹿児島県 157 鹿児島市:890,891,892
沖縄県 147 那覇市:900,902 沖縄市:904
""")

#: Town names (町名) that exist in many Japanese cities; the address line is town + block.
TOWNS: tuple[str, ...] = tuple("""
本町 中央 栄町 緑町 旭町 幸町 桜台 東町 西町 南町 北町 新町 若葉 松が丘 青葉台 泉町
花園 大町 宮前 柳町 元町 錦町 城南 富士見 日の出町 春日 平和町 住吉町 朝日町 八幡町
天神 高砂 昭和町 松原 駅前 寿町 千代田 中町 御幸町 三条
""".split())

#: Building names for the share of addresses that are flats (集合住宅).
BUILDINGS: tuple[str, ...] = tuple("""
グリーンハイツ サンライズマンション パークコート ロイヤルレジデンス フォレストヒルズ
リバーサイドコーポ さくら荘 メゾンエスポワール ライオンズマンション コーポ若葉
""".split())

#: E-mail domains reserved for documentation (RFC 2606, JPRS): a demo shop must never
#: reach a real mailbox, even if a campaign is sent through a real e-mail channel.
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("example.jp", 0.30),
    ("example.co.jp", 0.15),
    ("example.ne.jp", 0.25),
    ("example.com", 0.20),
    ("example.net", 0.07),
    ("example.org", 0.03),
)
